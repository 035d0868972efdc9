/** Test support: the smallest account databases shadow-utils accepts, under a test Host's root. */
import * as fs from 'node:fs/promises';
import { join } from 'node:path';

const LOGIN_DEFS = `# Minimal login.defs for Capstan's account tests
MAIL_DIR        /var/mail
PASS_MAX_DAYS   99999
PASS_MIN_DAYS   0
PASS_WARN_AGE   7
UID_MIN         1000
UID_MAX         60000
SYS_UID_MIN     100
SYS_UID_MAX     999
GID_MIN         1000
GID_MAX         60000
SYS_GID_MIN     100
SYS_GID_MAX     999
CREATE_HOME     no
UMASK           022
HOME_MODE       0750
USERGROUPS_ENAB yes
ENCRYPT_METHOD  SHA512
`;

/** Writes root's etc/{passwd,group,shadow,gshadow,login.defs} with only root and nobody/nogroup, and an empty /home. */
export async function populateAccounts(root: string): Promise<void> {
  const etc = join(root, 'etc');
  await fs.mkdir(etc, { recursive: true });
  await fs.mkdir(join(root, 'home'), { recursive: true });
  await fs.writeFile(join(etc, 'passwd'), 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n');
  await fs.writeFile(join(etc, 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  await fs.writeFile(join(etc, 'shadow'), 'root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n', { mode: 0o640 });
  await fs.writeFile(join(etc, 'gshadow'), 'root:*::\nnogroup:*::\n', { mode: 0o640 });
  await fs.writeFile(join(etc, 'login.defs'), LOGIN_DEFS);
}
