import type { AnyProvider } from '../provider.js';
import { alertingProvider, alertRulesProvider, alertTestProvider, dashboardProvider, sloProvider } from './providers.js';

/** SLO, AlertRules, AlertTest, Alerting and Dashboard. */
export const observabilityProviders: readonly AnyProvider[] = [sloProvider, alertRulesProvider, alertTestProvider, alertingProvider, dashboardProvider];

export { alertingProvider, alertRulesProvider, alertTestProvider, dashboardProvider, sloProvider };
export { sloSpecSchema, type SloSpec } from './slo.js';
export { alertRulesSpecSchema, type AlertRulesSpec } from './alert-rules.js';
export { alertTestSpecSchema, type AlertTestSpec } from './alert-test.js';
export { alertingSpecSchema, type AlertingSpec } from './alerting.js';
export { dashboardSpecSchema, type DashboardSpec } from './dashboard.js';
export type { FileSetLive } from './file-set.js';
