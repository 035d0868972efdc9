import { runProviderConformance } from '../testing/conformance.js';
import { sysctlProvider, type SysctlLive } from './sysctl.js';
import { openTestHost, type TestHost } from './testing/hosts.js';

let host: TestHost | undefined;

runProviderConformance({
  provider: sysctlProvider,
  // net.* parameters belong to the network namespace the test creates: the machine's own stay untouched.
  async connect() {
    host = await openTestHost({ netns: 'sysctl' });
    return { handle: host.handle, cleanup: host.cleanup };
  },
  create: { key: 'net.ipv4.ip_forward', value: '1', persist: true, persistOnly: false },
  update: { key: 'net.ipv4.ip_forward', value: '0', persist: true, persistOnly: false },
  invalidSpecs: [
    { spec: { key: 'net/ipv4/ip_forward', value: 1 }, message: /dotted kernel parameter name/ },
    { spec: { key: '../../etc/passwd', value: 1 }, message: /dotted kernel parameter name/ },
    { spec: { key: 'net.ipv4.ip_forward' }, message: /value must be a string or a number/ },
    { spec: { key: 'net.ipv4.ip_forward', value: ' ' }, message: /value must not be empty/ },
    { spec: { key: 'net.ipv4.ip_forward', value: '1\nkernel.panic = 1' }, message: /line break/ },
    { spec: { key: 'net.ipv4.ip_forward', value: 1, persist: 'yes' }, message: /persist must be true or false/ },
    { spec: { key: 'net.ipv4.ip_forward', value: 1, file: '/etc/sysctl.d/60-net' }, message: /\.conf file/ },
    { spec: { key: 'net.ipv4.ip_forward', value: 1, file: 'sysctl.d/60-net.conf' }, message: /absolute/ },
    { spec: { key: 'net.ipv4.ip_forward', value: 1, persist: false, persistOnly: true }, message: /persistOnly needs persist/ },
  ],
  makeDrift: async () => {
    host!.namespace!.run(['sysctl', '-w', 'net.ipv4.ip_forward=1']);
  },
  driftedField: 'value',
  isAbsent: (live: SysctlLive | null) => live === null || live.persisted === null,
});
