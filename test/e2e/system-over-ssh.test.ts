/**
 * The system providers' conformance suite over SSH, against a real sshd in a
 * network namespace (src/providers/system/testing/ssh-conformance.ts).
 */
import { runSystemConformanceOverSsh } from '../../src/providers/system/testing/ssh-conformance.js';

runSystemConformanceOverSsh();
