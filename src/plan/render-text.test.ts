import { describe, expect, it } from 'vitest';
import { Sensitive } from '../secrets/sensitive.js';
import type { Plan, PlannedChange } from './plan.js';
import { renderPlanText } from './render-text.js';

const change = (fields: PlannedChange['fields'], action: PlannedChange['action'] = 'update') =>
  ({ address: 'File/f', kind: 'File', target: 'Host/h', action, fields }) as unknown as PlannedChange;
const plan = (changes: PlannedChange[]) => ({ changes, diagnostics: [] }) as unknown as Plan;

describe('secrets in the text plan', () => {
  it('shows a new secret as (sensitive) and a changed one as (sensitive value changed), never the value or digest', () => {
    const secret = new Sensitive('pa55', 'hmac-sha256:abcd');
    const text = renderPlanText(
      plan([
        change([{ path: 'content', before: '(sensitive)', after: '(sensitive)', sensitive: true }]),
        change([{ path: 'environment.TOKEN', before: null, after: secret }], 'create'),
        change([{ path: 'password', before: { $sensitive: 'hmac-sha256:0' }, after: secret }]),
      ]),
    );
    expect(text).toMatch(/~ content: \(sensitive value changed\)/);
    expect(text).toMatch(/\+ environment\.TOKEN: \(sensitive\)/);
    expect(text).toMatch(/~ password: \(sensitive value changed\)/);
    expect(text).not.toMatch(/pa55|hmac-sha256/);
  });
});
