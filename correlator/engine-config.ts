// From the `correlator:` section of the config to the engine's settings.
import type { Config } from '../lib/config/load.js';
import type { EngineConfig } from './engine/types.js';

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

export function engineConfig(c: Config['correlator']): EngineConfig {
  return {
    windowMs: c.time_window.value * (c.time_window.unit === 's' ? 1000 : 1),
    apacheEmitDelayMs: c.orphan_policy.apache_emit_delay_ms,
    apacheAlwaysEmit: c.orphan_policy.apache_always_emit,
    networkEmit: c.orphan_policy.network_emit,
    mode: c.matching.mode,
    maxHttpItems: c.buffers.max_http_items,
    maxNetworkItems: c.buffers.max_network_items,
    networkTtlMs: c.ttl.network_ttl_s * 1000,
    reorderSlackMs: c.reorder_slack_ms,
    allowedLatenessMs: c.allowed_lateness.value * UNIT_MS[c.allowed_lateness.unit],
    maxClockSkewMs: c.max_clock_skew.value * UNIT_MS[c.max_clock_skew.unit],
  };
}
