import { runProviderConformance } from '../testing/conformance.js';
import { firewallProvider } from './firewall.js';
import { openTestHost, type TestHost } from './testing/hosts.js';

let host: TestHost | undefined;

runProviderConformance({
  provider: firewallProvider,
  // nftables tables belong to the network namespace the test creates; the host is "reached over SSH" on port 2222.
  async connect() {
    host = await openTestHost({ netns: 'nft', sshPort: 2222 });
    return { handle: host.handle, cleanup: host.cleanup };
  },
  create: {
    family: 'inet',
    table: 'capstan_test',
    force: false,
    chains: {
      input: {
        hook: 'input',
        type: 'filter',
        priority: 0,
        policy: 'accept',
        rules: ['ct state established,related accept', 'tcp dport {80,443} counter accept'],
      },
    },
  },
  update: {
    family: 'inet',
    table: 'capstan_test',
    force: false,
    sets: { blocked: { type: 'ipv4_addr', flags: ['interval'], elements: ['198.18.9.0/24', '198.18.1.1'] } },
    chains: {
      input: {
        hook: 'input',
        type: 'filter',
        priority: 0,
        policy: 'drop',
        rules: ['ct state established,related accept', 'iif lo accept', 'ip saddr @blocked drop', 'tcp dport 2222 accept', 'tcp dport { 80, 443 } accept'],
      },
    },
  },
  invalidSpecs: [
    { spec: { table: 'capstan_test' }, message: /either chains \(and sets\) or ruleset/ },
    { spec: { table: 'capstan_test', ruleset: 'chain c {}', chains: {} }, message: /not both/ },
    { spec: { table: 'bad name', chains: {} }, message: /table must be a name/ },
    { spec: { table: 't', family: 'ipx', chains: {} }, message: /family must be one of/ },
    { spec: { table: 't', chains: { input: { rules: ['accept; }\n}\ntable ip other {'] } } }, message: /one rule|without its/ },
    { spec: { table: 't', chains: { input: { rules: ['tcp dport 22 accept # note'] } } }, message: /must not contain "#"/ },
    { spec: { table: 't', chains: { input: { policy: 'drop', rules: [] } } }, message: /policy needs a hook/ },
    { spec: { table: 't', chains: { input: { hook: 'inbound' } } }, message: /hook must be one of/ },
    { spec: { table: 't', ruleset: '}\ndelete table ip other\ntable ip x {' }, message: /without its "\{"/ },
    { spec: { table: 't', ruleset: 'include "/etc/nftables.conf"' }, message: /must not use include/ },
    { spec: { table: 't', sets: { s: { type: 'ipv4_addr', elements: ['1.2.3.4, 5.6.7.8'] } } }, message: /one value/ },
  ],
  // Someone opens a port by hand.
  makeDrift: async () => {
    host!.namespace!.run(['nft', 'add', 'rule', 'inet', 'capstan_test', 'input', 'tcp', 'dport', '9999', 'accept']);
  },
  driftedField: 'chains.input',
});
