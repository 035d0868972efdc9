import { describe, expect, it } from 'vitest';
import { renderRule, sshLockout, tableModel, type ChainModel, type TableModel } from './nftables.js';

const dport = (right: unknown, op = '==') => ({ match: { op, left: { payload: { protocol: 'tcp', field: 'dport' } }, right } });
const ctState = (right: unknown) => ({ match: { op: 'in', left: { ct: { key: 'state' } }, right } });
const saddr = { match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: { prefix: { addr: '198.18.0.0', len: 15 } } } };
const accept = { accept: null };
const drop = { drop: null };
const rule = (...expr: unknown[]) => ({ expr, comment: null });

function table(chains: Record<string, ChainModel>, objects: Record<string, unknown> = {}, family = 'inet'): TableModel {
  return { family, table: 't', attributes: {}, chains, objects };
}
const input = (policy: 'accept' | 'drop', ...rules: ReturnType<typeof rule>[]): ChainModel => ({
  hook: { type: 'filter', hook: 'input', prio: 0, policy, dev: null },
  rules,
});

describe('SSH lockout check', () => {
  it.each([
    ['policy drop with only established traffic accepted', table({ input: input('drop', rule(ctState(['established', 'related']), accept)) }), /chain input has policy drop and no rule that accepts new connections to tcp port 2222/],
    ['policy drop with the port accepted', table({ input: input('drop', rule(dport(2222), accept)) }), null],
    ['the port inside a set with a range', table({ input: input('drop', rule(dport({ set: [22, { range: [2000, 3000] }] }), accept)) }), null],
    ['a new-connection accept for the port', table({ input: input('drop', rule(ctState('new'), dport(2222), { counter: null }, accept)) }), null],
    ['an explicit drop of the port', table({ input: input('accept', rule(dport(2222), drop)) }), /chain input drops new connections to tcp port 2222 with the rule "tcp dport 2222 drop"/],
    ['an accept limited to some sources proves nothing', table({ input: input('drop', rule(saddr, dport(2222), accept)) }), /policy drop/],
    ['a blocklist drop is not a lockout', table({ input: input('accept', rule(saddr, drop)) }), null],
    ['udp on the same port does not help', table({ input: input('drop', rule({ match: { op: '==', left: { payload: { protocol: 'udp', field: 'dport' } }, right: 2222 } }, accept)) }), /policy drop/],
    ['every port but this one dropped', table({ input: input('accept', rule(dport(2222, '!='), drop)) }), null],
    ['an accept in a chain it jumps to', table({ input: input('drop', rule({ jump: { target: 'ssh' } })), ssh: { hook: null, rules: [rule(dport(2222), accept)] } }), null],
    ['a named set of ports', table({ input: input('drop', rule(dport('@ssh_ports'), accept)) }, { 'set ssh_ports': { type: 'inet_service', elem: [2222] } }), null],
    ['a rate-limited accept proves nothing', table({ input: input('drop', rule(dport(2222), { limit: { rate: 10, per: 'minute' } }, accept)) }), /policy drop/],
    ['a forward chain is not in the way', table({ fwd: { hook: { type: 'filter', hook: 'forward', prio: 0, policy: 'drop', dev: null }, rules: [] } }), null],
    ['an ARP table does not filter TCP', table({ input: input('drop') }, {}, 'arp'), null],
  ])('%s', (_title, model, expected) => {
    const why = sshLockout(model, 2222);
    if (expected === null) expect(why).toBeNull();
    else expect(why).toMatch(expected);
  });
});

describe('table model', () => {
  it('merges echoed set elements, drops handles and counters, and keeps rules in order', () => {
    const echo = [
      { add: { table: { family: 'inet', name: 't', handle: 1 } } },
      { add: { chain: { family: 'inet', table: 't', name: 'input', handle: 1, type: 'filter', hook: 'input', prio: 0, policy: 'drop' } } },
      { add: { counter: { family: 'inet', table: 't', name: 'hits', handle: 2, packets: 0, bytes: 0 } } },
      { add: { set: { family: 'inet', table: 't', name: 'blocked', handle: 3, type: 'ipv4_addr', flags: ['interval'] } } },
      { add: { element: { family: 'inet', table: 't', name: 'blocked', elem: { set: ['198.18.9.9'] } } } },
      { add: { element: { family: 'inet', table: 't', name: 'blocked', elem: { set: ['198.18.1.1'] } } } },
      { add: { rule: { family: 'inet', table: 't', chain: 'input', handle: 4, expr: [dport(22), accept] } } },
      { add: { rule: { family: 'inet', table: 't', chain: 'input', handle: 5, expr: [drop], comment: 'last' } } },
      { add: { table: { family: 'inet', name: 'other', handle: 9 } } },
    ];
    const listed = [
      { metainfo: { version: '1.0.6' } },
      { table: { family: 'inet', name: 't', handle: 7 } },
      { counter: { family: 'inet', table: 't', name: 'hits', handle: 8, packets: 12, bytes: 3400 } },
      { set: { family: 'inet', table: 't', name: 'blocked', handle: 9, type: 'ipv4_addr', flags: ['interval'], elem: ['198.18.1.1', '198.18.9.9'] } },
      { chain: { family: 'inet', table: 't', name: 'input', handle: 10, type: 'filter', hook: 'input', prio: 0, policy: 'drop' } },
      { rule: { family: 'inet', table: 't', chain: 'input', handle: 11, expr: [dport(22), accept] } },
      { rule: { family: 'inet', table: 't', chain: 'input', handle: 12, expr: [drop], comment: 'last' } },
    ];
    const a = tableModel(echo, 'inet', 't');
    expect(a).toEqual(tableModel(listed, 'inet', 't'));
    expect(a?.objects).toEqual({
      'counter hits': {},
      'set blocked': { type: 'ipv4_addr', flags: ['interval'], elem: ['198.18.1.1', '198.18.9.9'] },
    });
    expect(tableModel(listed, 'ip', 't')).toBeNull();
  });

  it('ignores the contents of sets that rules fill at run time', () => {
    const items = [
      { table: { family: 'inet', name: 't' } },
      { set: { family: 'inet', table: 't', name: 'seen', type: 'ipv4_addr', flags: ['dynamic', 'timeout'], elem: [{ elem: { val: '198.18.0.5', expires: 59 } }] } },
    ];
    expect(tableModel(items, 'inet', 't')?.objects).toEqual({ 'set seen': { type: 'ipv4_addr', flags: ['dynamic', 'timeout'] } });
  });
});

describe('rule rendering', () => {
  it.each([
    [[ctState(['established', 'related']), accept], 'ct state established,related accept'],
    [[{ match: { op: '==', left: { meta: { key: 'iif' } }, right: 'lo' } }, accept], 'iif "lo" accept'],
    [[dport({ set: [22, 80, { range: [8000, 8080] }] }), { counter: null }, accept], 'tcp dport { 22, 80, 8000-8080 } counter accept'],
    [[saddr, { jump: { target: 'audit' } }], 'ip saddr 198.18.0.0/15 jump audit'],
    [[{ match: { op: '==', left: { meta: { key: 'l4proto' } }, right: 'icmp' } }, { limit: { rate: 10, burst: 5, per: 'second' } }, accept], 'meta l4proto icmp limit rate 10/second accept'],
    [[{ xt: { type: 'match', name: 'conntrack' } }, drop], '{"xt":{"type":"match","name":"conntrack"}} drop'],
  ])('%j reads as %s', (expr, text) => {
    expect(renderRule({ expr, comment: null })).toBe(text);
  });
});
