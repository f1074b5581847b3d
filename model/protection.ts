/**
 * The one place that decides which data may be lost. Production keeps postgres, media and backups through
 * any change and any `pulumi destroy`; the redis volume only holds cache and queue state and stays
 * resettable everywhere. Tests call this directly and also check the options the engine receives.
 */
import { Environment } from "./settings";

export type VolumeRole = "postgres" | "redis" | "media" | "backups";
export const VOLUME_ROLES: readonly VolumeRole[] = ["postgres", "redis", "media", "backups"];

/** The volumes the program declares for a stack: all but postgres when the database is external. */
export function declaredVolumeRoles(settings: { readonly database?: unknown }): VolumeRole[] {
  return VOLUME_ROLES.filter((role) => role !== "postgres" || !settings.database);
}

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

export type ContainerRole = "postgres" | "redis" | "proxy" | "web" | "worker" | "scheduler";

export interface ContainerReplacement {
  /** A new resource (URN and container name) per release: the engine creates it beside the old one. */
  readonly perRelease: boolean;
  /** For a replacement *within* one resource (same name): delete the old container first. */
  readonly deleteBeforeReplace: boolean;
  /** SIGTERM, then this long before SIGKILL when the engine deletes the container. */
  readonly destroyGraceSeconds?: number;
}

/**
 * How each container goes from one release to the next. Only the web container behind the proxy may run
 * twice: the old one serves until the new one is healthy and the proxy has switched. It is a new resource
 * per release rather than a create-before-delete replacement because the engine deletes resources dropped
 * from the program only after a *successful* update, whereas a replaced resource whose update failed stays
 * "pending delete" and is deleted at the start of the next `pulumi up`: that would take down the still-serving
 * old web at the start of the rollback.
 */
export function containerReplacement(role: ContainerRole, proxy: boolean): ContainerReplacement {
  switch (role) {
    // Two servers on one data directory corrupt it; the name is fixed as well.
    case "postgres":
    case "redis":
      return { perRelease: false, deleteBeforeReplace: true };
    // Owns the published port, which two containers cannot bind.
    case "proxy":
      return { perRelease: false, deleteBeforeReplace: true, destroyGraceSeconds: 30 };
    // Stopped before the new one starts, so two releases never consume one queue; SIGTERM is celery's warm
    // shutdown (running tasks finish, queued ones wait in Redis for the new worker).
    case "worker":
      return { perRelease: false, deleteBeforeReplace: true, destroyGraceSeconds: 60 };
    // Per release behind the proxy; within a release (rebuilt tag, secret rotation) the name is the same,
    // so that rarer replacement is still delete-first. gunicorn finishes requests on SIGTERM.
    case "web":
      return { perRelease: proxy, deleteBeforeReplace: true, destroyGraceSeconds: 30 };
    // Not tied to a release; on SIGTERM during a backup it records the interruption before it exits.
    case "scheduler":
      return { perRelease: false, deleteBeforeReplace: true, destroyGraceSeconds: 30 };
    default: {
      const unreachable: never = role;
      throw new Error(`unknown container role ${String(unreachable)}`);
    }
  }
}
