/**
 * The one place that decides which data may be lost. Production keeps postgres, media and backups through
 * any change and any `pulumi destroy`; the redis volume only holds cache and queue state and stays
 * resettable everywhere. Tests call this directly and also check the options the engine receives.
 */
import { Environment } from "./config";

export type VolumeRole = "postgres" | "redis" | "media" | "backups";
export const VOLUME_ROLES: readonly VolumeRole[] = ["postgres", "redis", "media", "backups"];

export interface VolumeProtection {
  readonly protect: boolean;
  readonly retainOnDelete: boolean;
  /** Label `edms.data`: persistent data vs. cache that may be dropped. */
  readonly data: "persistent" | "cache";
}

export function volumeProtection(environment: Environment, role: VolumeRole): VolumeProtection {
  const data = role === "redis" ? "cache" : "persistent";
  switch (environment) {
    case "production":
      return { protect: data === "persistent", retainOnDelete: data === "persistent", data };
    case "staging":
    case "dev":
      return { protect: false, retainOnDelete: false, data };
    default: {
      const unreachable: never = environment;
      throw new Error(`unknown environment ${String(unreachable)}`);
    }
  }
}

/**
 * Containers have fixed names (edms-ops finds them by name), so a replacement must delete the old one
 * first: Docker refuses two containers with one name.
 */
export const CONTAINER_OPTIONS = { deleteBeforeReplace: true } as const;
