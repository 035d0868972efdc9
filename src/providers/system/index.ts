import type { AnyProvider } from '../provider.js';
import { execProvider } from './exec.js';
import { firewallProvider } from './firewall.js';
import { groupProvider } from './group.js';
import { packageProvider } from './package.js';
import { routeProvider } from './route.js';
import { sysctlProvider } from './sysctl.js';
import { userProvider } from './user.js';

/** Host configuration kinds: packages, accounts, kernel parameters, firewall, routes and commands. They live on a `Host`. */
export const systemProviders: readonly AnyProvider[] = [
  packageProvider,
  groupProvider,
  userProvider,
  sysctlProvider,
  firewallProvider,
  routeProvider,
  execProvider,
];

export { execProvider, execSchema, type ExecLive, type ExecSpec } from './exec.js';
export { firewallProvider, firewallSchema, type FirewallLive, type FirewallSpec } from './firewall.js';
export { groupProvider, groupSchema, type GroupLive, type GroupSpec } from './group.js';
export { packageProvider, packageSchema, type PackageLive, type PackageSpec } from './package.js';
export { routeProvider, routeSchema, type RouteLive, type RouteSpec } from './route.js';
export { sysctlProvider, sysctlSchema, type SysctlLive, type SysctlSpec } from './sysctl.js';
export { userProvider, userSchema, type UserLive, type UserSpec } from './user.js';
