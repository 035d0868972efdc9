/** Where Prometheus runs on its host, for the kinds that deliver rule files to it. */
import { z } from 'zod';
import { NAME_PATTERN } from '../../spec/resource.js';

export const PROMETHEUS_DEFAULTS = { url: 'http://127.0.0.1:9090', rulesDir: '/etc/prometheus/rules.d', promtool: 'promtool' } as const;

export const prometheusDeliverySchema = z
  .object({
    /** Base URL of the Prometheus HTTP API, as reached from where Capstan runs. */
    url: z.string().url().default(PROMETHEUS_DEFAULTS.url),
    /** A directory matched by `rule_files` in prometheus.yml (e.g. `/etc/prometheus/rules.d/*.yml`). */
    rulesDir: z.string().startsWith('/').default(PROMETHEUS_DEFAULTS.rulesDir),
    /** promtool on the host, used to check each file before it is installed. */
    promtool: z.string().min(1).default(PROMETHEUS_DEFAULTS.promtool),
  })
  .strict();

export type PrometheusDelivery = z.infer<typeof prometheusDeliverySchema>;

/** The resource name, recorded by `resolve` (see identity.ts). */
export const specNameSchema = z.string().regex(NAME_PATTERN).optional();
