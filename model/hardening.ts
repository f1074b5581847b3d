/**
 * What every container the program or edms-ops starts is confined by (issue 20 finding 6): no new
 * privileges, every capability dropped and only those named here added back, a read-only root filesystem
 * with tmpfs where the image must write, memory (and for edms-ops, process) limits, rotated logs. Shared
 * by components/container.ts and ops/engine/dockerRun.ts, so both confine alike.
 *
 * Capabilities are the minimum measured against the real images (images/, sample-app/): only processes
 * running as root use them, and only until they drop to their own user.
 */
import type { Limited } from "./config/limits";

export const SECURITY_OPTS = ["no-new-privileges"] as const;

/** json-file, rotated: at most MAX_FILE files of MAX_SIZE per container. */
export const LOG_DRIVER = "json-file";
export const LOG_OPTS = { "max-size": "10m", "max-file": "3" } as const;

export type Capability =
  "CHOWN" | "DAC_OVERRIDE" | "DAC_READ_SEARCH" | "FOWNER" | "KILL" | "SETGID" | "SETUID";

export interface Confinement {
  /** Added back after dropping ALL. */
  readonly capabilities: readonly Capability[];
  /** Paths the image writes outside its volumes: tmpfs, gone with the container. */
  readonly tmpfs: readonly string[];
  /**
   * A read-only root filesystem. Not where files are copied in before start (secrets, HAProxy's config):
   * the Docker provider uploads into `/` (CopyToContainer), which Docker refuses on a read-only root even
   * for a path on a volume, and a tmpfs exists only once the container runs.
   */
  readonly readOnly: boolean;
  /**
   * Without no-new-privileges. Only the proxy: `edms-ops switch` rewrites its config as root (`docker exec
   * -u 0`), and Docker gives a root exec'd into a no-new-privileges container whose user is not root no
   * capability at all (measured: CapEff 0, "Permission denied" on the haproxy-owned config directory).
   * HAProxy's own process still runs unprivileged with every capability but DAC_OVERRIDE dropped.
   */
  readonly newPrivileges?: true;
}

/**
 * Per role. postgres' and redis' entrypoints start as root to `chown` their data and `gosu` to their user
 * (CHOWN, SETUID, SETGID; postgres also chmods and walks a data directory it no longer owns: FOWNER,
 * DAC_OVERRIDE). Django and HAProxy (ports 8080/8443, no NET_BIND_SERVICE) need none; the scheduler only
 * reads media of any owner and mode (DAC_READ_SEARCH).
 * edms-ops' root helpers read and restore media of any owner, keeping owners: CHOWN, DAC_OVERRIDE,
 * DAC_READ_SEARCH, FOWNER; never SETUID/SETGID, so nothing in them becomes another user.
 */
export const CONFINEMENT: Record<Limited, Confinement> = {
  postgres: {
    capabilities: ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"],
    tmpfs: ["/tmp", "/var/run/postgresql"],
    readOnly: false,
  },
  // Not read-only: its config file (`requirepass`) is uploaded before start, as the other secrets are.
  redis: { capabilities: ["CHOWN", "SETGID", "SETUID"], tmpfs: ["/tmp"], readOnly: false },
  web: { capabilities: [], tmpfs: ["/tmp"], readOnly: false },
  worker: { capabilities: [], tmpfs: ["/tmp"], readOnly: false },
  // `edms-ops switch` rewrites live.cfg as root (`docker exec -u 0`) in the image's haproxy-owned config
  // directory: DAC_OVERRIDE lets that root write there; HAProxy itself runs unprivileged and gets nothing.
  proxy: {
    capabilities: ["DAC_OVERRIDE"],
    tmpfs: ["/tmp", "/run"],
    readOnly: false,
    newPrivileges: true,
  },
  // It reads media of any owner and mode for its backups (mounted read-only), as the helpers do.
  scheduler: { capabilities: ["DAC_READ_SEARCH"], tmpfs: ["/tmp"], readOnly: false },
  helpers: {
    capabilities: ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER"],
    tmpfs: ["/tmp"],
    readOnly: true,
  },
};

/** tmpfs options: no devices or setuid programs there; executables are allowed (some tools unpack to /tmp). */
export const TMPFS_OPTIONS = "rw,nosuid,nodev";
