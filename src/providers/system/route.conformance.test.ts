import { runProviderConformance } from '../testing/conformance.js';
import { routeProvider } from './route.js';
import { openTestHost, type TestHost } from './testing/hosts.js';

let host: TestHost | undefined;

runProviderConformance({
  provider: routeProvider,
  // A namespace of the test's own with a veth pair on 198.18.0.0/24 (RFC 2544 benchmarking range).
  async connect() {
    host = await openTestHost({ netns: 'route' });
    const ns = host.namespace!;
    ns.run(['ip', 'link', 'add', 'cap0', 'type', 'veth', 'peer', 'name', 'cap1']);
    ns.run(['ip', 'link', 'set', 'cap0', 'up']);
    ns.run(['ip', 'link', 'set', 'cap1', 'up']);
    ns.run(['ip', 'addr', 'add', '198.18.0.1/24', 'dev', 'cap0']);
    return { handle: host.handle, cleanup: host.cleanup };
  },
  create: { destination: '198.18.5.0/24', via: '198.18.0.2', table: 254, type: 'unicast', family: 'ipv4' },
  update: { destination: '198.18.5.0/24', via: '198.18.0.3', dev: 'cap0', table: 254, type: 'unicast', family: 'ipv4' },
  invalidSpecs: [
    { spec: { destination: '198.18.5.1/24', via: '198.18.0.2' }, message: /host bits set: the network is 198\.18\.5\.0\/24/ },
    { spec: { destination: '198.18.5.0/33', dev: 'cap0' }, message: /prefix length outside 0-32/ },
    { spec: { destination: 'example.com', dev: 'cap0' }, message: /not an IPv4 or IPv6 address/ },
    { spec: { destination: '198.18.5.0/24' }, message: /needs via/ },
    { spec: { destination: '198.18.5.0/24', via: '2001:db8::1' }, message: /not an ipv4 address/ },
    { spec: { destination: '198.18.5.0/24', dev: '-bad' }, message: /interface name/ },
    { spec: { destination: '198.18.5.0/24', type: 'blackhole', via: '198.18.0.2' }, message: /blackhole route takes neither/ },
    { spec: { destination: '198.18.5.0/24', dev: 'cap0', table: 'vpn' }, message: /table must be a number or one of/ },
    { spec: { destination: '198.18.5.0/24', dev: 'cap0', metric: -1 }, message: /metric must be from 0/ },
  ],
  makeDrift: async () => {
    host!.namespace!.run(['ip', 'route', 'replace', '198.18.5.0/24', 'via', '198.18.0.4', 'dev', 'cap0']);
  },
  driftedField: 'via',
});
