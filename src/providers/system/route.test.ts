import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalAddress, parsePrefix } from './ip-address.js';
import { diffRoute, parseRoutes, routeProvider, routeSchema, type RouteSpec } from './route.js';
import { converge, ctx, openTestHost, remove, schemaErrors, type TestHost } from './testing/hosts.js';

const route = (input: Record<string, unknown>): RouteSpec => routeSchema.parse(input);

describe('IP addresses', () => {
  it.each([
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['::', '::'],
    ['fe80::0:1', 'fe80::1'],
    ['::ffff:198.18.0.1', '::ffff:c612:1'],
    ['198.018.000.001', null],
  ])('canonical form of %s is %s', (input, expected) => {
    expect(canonicalAddress(input)?.address ?? null).toBe(expected);
  });

  it('refuses host bits and names the network', () => {
    expect(parsePrefix('2001:db8::1/64')).toEqual({ error: '"2001:db8::1/64" has host bits set: the network is 2001:db8::/64' });
    expect(parsePrefix('198.18.0.0/15')).toEqual({ family: 'ipv4', address: '198.18.0.0', length: 15 });
  });
});

describe('Route schema and diff', () => {
  it('normalises destinations, tables and families', () => {
    expect(route({ destination: '198.18.6.7/32', dev: 'cap0', table: 'main' })).toEqual({
      destination: '198.18.6.7',
      dev: 'cap0',
      table: 254,
      type: 'unicast',
      family: 'ipv4',
    });
    expect(route({ destination: '0.0.0.0/0', via: '198.18.0.254' }).destination).toBe('default');
    expect(route({ destination: 'default', via: '2001:db8::1' }).family).toBe('ipv6');
    expect(route({ destination: '2001:DB8::/64', dev: 'cap0' }).destination).toBe('2001:db8::/64');
  });

  it('refuses a table named by the host only', () => {
    expect(schemaErrors(routeSchema, { destination: 'default', via: '198.18.0.1', table: 0 })).toMatch(/table 0 is not a routing table/);
  });

  it('treats a new metric or table as another route: replace', () => {
    const before = route({ destination: '198.18.5.0/24', via: '198.18.0.2' });
    const diff = diffRoute(route({ destination: '198.18.5.0/24', via: '198.18.0.2', metric: 10 }), null, before);
    expect(diff.action).toBe('replace');
    expect(diff.fields).toContainEqual({ path: 'metric', before: 0, after: 10 });
    expect(diff.reason).toMatch(/ipv4 table 254 198\.18\.5\.0\/24 metric 0 is another route/);
  });

  it('ignores the interface the kernel picked when the spec names only a gateway', () => {
    const live = parseRoutes('[{"dst":"198.18.5.0/24","gateway":"198.18.0.2","dev":"cap0","flags":[]}]')[0]!;
    expect(diffRoute(route({ destination: '198.18.5.0/24', via: '198.18.0.2' }), live, null).action).toBe('noop');
  });

  it('reads numeric route types and tables from ip -N', () => {
    expect(parseRoutes('[{"type":"6","dst":"198.18.8.0/24","table":"100","flags":[]}]')).toEqual([
      { family: 'ipv4', destination: '198.18.8.0/24', table: 100, metric: 0, type: 'blackhole', via: null, dev: null, protocol: null },
    ]);
  });
});

describe('Route in a network namespace', () => {
  let host: TestHost;

  beforeAll(async () => {
    host = await openTestHost({ netns: 'route-unit' });
    const ns = host.namespace!;
    ns.run(['ip', 'link', 'add', 'cap0', 'type', 'veth', 'peer', 'name', 'cap1']);
    ns.run(['ip', 'link', 'set', 'cap0', 'up']);
    ns.run(['ip', 'link', 'set', 'cap1', 'up']);
    ns.run(['ip', 'addr', 'add', '198.18.0.1/24', 'dev', 'cap0']);
  });
  afterAll(() => host?.cleanup());

  it('creates routes in other tables, with metrics, and blackholes; reads them back in one call', async () => {
    const specs = [
      route({ destination: '198.18.6.7', dev: 'cap0', table: 100 }),
      route({ destination: '198.18.7.0/24', via: '198.18.0.2', metric: 50 }),
      route({ destination: '198.18.8.0/24', type: 'blackhole' }),
    ];
    for (const s of specs) await converge(routeProvider, host.handle, s);
    host.recorder.reset();
    const lives = await routeProvider.read(host.handle, [...specs, route({ destination: '198.18.9.0/24', dev: 'cap0' })], ctx);
    expect(host.recorder.execs).toEqual([['ip', '-j', '-N', 'route', 'show', 'table', 'all']]);
    expect(lives.map((l) => (l ? [l.destination, l.table, l.metric, l.type, l.via, l.dev] : null))).toEqual([
      ['198.18.6.7', 100, 0, 'unicast', null, 'cap0'],
      ['198.18.7.0/24', 254, 50, 'unicast', '198.18.0.2', 'cap0'],
      ['198.18.8.0/24', 254, 0, 'blackhole', null, null],
      null,
    ]);
    expect(host.namespace!.run(['ip', 'route', 'show', 'table', '100'])).toMatch(/^198\.18\.6\.7 dev cap0/m);
  });

  it('moves a route to another metric, deleting the old one', async () => {
    const before = route({ destination: '198.18.7.0/24', via: '198.18.0.2', metric: 50 });
    const after = route({ destination: '198.18.7.0/24', via: '198.18.0.2', metric: 60 });
    const { diff } = await converge(routeProvider, host.handle, after, before);
    expect(diff.action).toBe('replace');
    const [old, moved] = await routeProvider.read(host.handle, [before, after], ctx);
    expect(old).toBeNull();
    expect(moved?.metric).toBe(60);
  });

  it('names the host and the route when the kernel refuses it', async () => {
    await expect(converge(routeProvider, host.handle, route({ destination: '198.18.10.0/24', via: '198.19.99.1' }))).rejects.toThrow(
      /setting route ipv4 table 254 198\.18\.10\.0\/24 metric 0 \(Route\/test\) on Host\/test .* failed: ip exited with status 2: .*gateway/i,
    );
  });

  it('deletes a route that is already gone without complaint', async () => {
    const gone = route({ destination: '198.18.11.0/24', dev: 'cap0' });
    expect(await remove(routeProvider, host.handle, gone)).toBeNull();
  });
});
