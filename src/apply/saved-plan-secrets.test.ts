import { describe, expect, it } from 'vitest';
import type { Plan, PlannedChange } from '../plan/plan.js';
import { resourceSpecHash } from '../plan/planner.js';
import { Sensitive } from '../secrets/sensitive.js';
import type { Resource } from '../spec/resource.js';
import { restoreSecrets } from './saved-plan-secrets.js';

const at = { file: 'a.yaml', line: 1, col: 1 };
const resource = (address: string, spec: unknown, target?: string): Resource => ({
  address,
  kind: address.split('/')[0]!,
  name: address.split('/')[1]!,
  target,
  dependsOn: [],
  spec,
  source: at,
  positionOf: () => at,
});

function savedPlan(file: Resource, host: Resource): Plan {
  const change = { address: file.address, kind: 'File', target: host.address, action: 'create', after: file.spec, specHash: resourceSpecHash(file) } as unknown as PlannedChange;
  const plan = { formatVersion: 1, changes: [change], targets: { [host.address]: { kind: 'Host', spec: host.spec } } } as unknown as Plan;
  // What `plan --out` writes and `apply --plan` reads.
  return JSON.parse(JSON.stringify(plan)) as Plan;
}

describe('restoreSecrets', () => {
  const host = resource('Host/h', { transport: 'ssh', passphrase: new Sensitive('pp', 'hmac-sha256:p') });
  const file = resource('File/f', { path: '/x', content: new Sensitive('v1', 'hmac-sha256:1') }, 'Host/h');

  it('takes the values back from the re-loaded spec when the digests match', () => {
    const saved = savedPlan(file, host);
    expect(JSON.stringify(saved)).not.toContain('v1');
    const { plan, reasons } = restoreSecrets(saved, { targets: [host], resources: [file] });
    expect(reasons).toEqual([]);
    expect((plan.changes[0]!.after as { content: Sensitive }).content.reveal()).toBe('v1');
    expect((plan.targets['Host/h']!.spec as { passphrase: Sensitive }).passphrase.reveal()).toBe('pp');
  });

  it('calls the plan stale when a secret changed since', () => {
    const saved = savedPlan(file, host);
    const changedFile = resource('File/f', { path: '/x', content: new Sensitive('v2', 'hmac-sha256:2') }, 'Host/h');
    const changedHost = resource('Host/h', { transport: 'ssh', passphrase: new Sensitive('pq', 'hmac-sha256:q') });
    const { reasons } = restoreSecrets(saved, { targets: [changedHost], resources: [changedFile] });
    expect(reasons).toEqual(['File/f: a secret of its spec changed since the plan was made', 'Host/h: a secret of the target changed since the plan was made, or the target left the spec']);
  });
});
