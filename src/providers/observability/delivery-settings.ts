/** Where Prometheus runs on its host, for the kinds that deliver rule files to it. */
import { z } from 'zod';
import { NAME_PATTERN } from '../../spec/resource.js';

export const PROMETHEUS_DEFAULTS = { url: 'http://127.0.0.1:9090', rulesDir: '/etc/prometheus/rules.d', promtool: 'promtool' } as const;

export const prometheusDeliverySchema = z
  .object({
    /** Base URL of the Prometheus HTTP API, as reached from where Capstan runs. */
    url: z.string().url().default(PROMETHEUS_DEFAULTS.url).meta({ description: 'Base URL of the Prometheus HTTP API, as reached from where Capstan runs (to reload it).', examples: ['http://127.0.0.1:9090'] }),
    /** A directory matched by `rule_files` in prometheus.yml (e.g. `/etc/prometheus/rules.d/*.yml`). */
    rulesDir: z
      .string()
      .startsWith('/')
      .default(PROMETHEUS_DEFAULTS.rulesDir)
      .meta({ description: 'A directory on the host matched by `rule_files` in prometheus.yml (e.g. /etc/prometheus/rules.d/*.yml).', examples: ['/etc/prometheus/rules.d'] }),
    /** promtool on the host, used to check each file before it is installed. */
    promtool: z.string().min(1).default(PROMETHEUS_DEFAULTS.promtool).meta({ description: 'promtool on the host, used to check each file before it is installed.', examples: ['/usr/bin/promtool'] }),
  })
  .strict()
  .meta({ description: 'Where the rule file is delivered when the resource has a target Host: the Prometheus on that host.' });

export type PrometheusDelivery = z.infer<typeof prometheusDeliverySchema>;

/** The resource name, recorded by `resolve` (see identity.ts). */
export const specNameSchema = z
  .string()
  .regex(NAME_PATTERN)
  .optional()
  .meta({ description: "The document's name, filled in when the stack is loaded: leave it out.", examples: ['api-availability'] });
