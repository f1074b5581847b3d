/**
 * Docker labels the program sets and edms-ops and the policy pack read. No @pulumi import.
 */
import type { Settings } from "./settings";

export const LABELS = {
  /** The stack name: `docker ps/volume ls --filter label=edms.stack=<stack>` finds a stack's parts. */
  stack: "edms.stack",
  environment: "edms.environment",
  /** On volumes: `persistent` data vs. `cache` that may be dropped. */
  data: "edms.data",
  /** On containers: postgres, redis, proxy, web, worker; `ops` for edms-ops' one-off containers. */
  role: "edms.role",
  /** On web/worker: the release they run. */
  version: "edms.version",
} as const;

/** The labels every resource of a stack carries, plus `extra`. */
export function stackLabelMap(
  settings: Settings,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    [LABELS.stack]: settings.stack,
    [LABELS.environment]: settings.environment,
    ...extra,
  };
}
