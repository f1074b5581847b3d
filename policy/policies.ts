/**
 * The guardrails, as plain policy objects so tests call them directly; index.ts wraps them in the pack.
 * They look at labels and names the program sets (edms.environment, edms.data, edms.role, hook names), so
 * they also hold against a hand-edited program.
 *
 * Note: policies see `protect` but not `retainOnDelete` (PolicyResourceOptions has no such field); the
 * unit tests check retainOnDelete in the registration requests the engine receives.
 */
import { offHostTlsViolations } from "./offHost";
import { PolicyResource, ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
import { posix } from "path";
import { APP_DB_PASSWORD_FILE, APP_DB_USER, SUPERUSER_PASSWORD_FILE } from "../model/containers";
import { HookName, HOOKS } from "../model/hooks";
import { unpinnedImageReports } from "./images";
import { ALLOWED_HOSTS_ENV, HTTPS_ENV } from "../model/https";
import { LABELS } from "../model/labels";
import {
  httpFrontendRedirects,
  PROXY_HTTPS_PORT,
  PROXY_MAIN_CONFIG,
  PROXY_TLS_PEM,
} from "../model/proxy";

const VOLUME = "docker:index/volume:Volume";
const CONTAINER = "docker:index/container:Container";
const COMMAND = "command:local:Command";
const NETWORK = "docker:index/network:Network";

type Labels = Record<string, string>;

export function labelsOf(props: Record<string, any>): Labels {
  return Object.fromEntries(
    ((props.labels ?? []) as { label: string; value: string }[]).map((l) => [l.label, l.value]),
  );
}

export const productionDataProtected: ResourceValidationPolicy = {
  name: "production-data-protected",
  description:
    "Persistent data volumes of a production stack are protected (and retained on delete).",
  enforcementLevel: "mandatory",
  validateResource: (args, reportViolation) => {
    if (args.type !== VOLUME) {
      return;
    }
    const labels = labelsOf(args.props);
    if (
      labels[LABELS.environment] === "production" &&
      labels[LABELS.data] === "persistent" &&
      !args.opts.protect
    ) {
      reportViolation(
        `Volume ${args.props.name ?? args.name} holds persistent production data but is not protected. ` +
          "Set `protect: true` and `retainOnDelete: true` (model/protection.ts decides this).",
      );
    }
  },
};

// A name that says it holds a credential, unless it is the *_FILE path that points at one.
const SECRET_NAME = /(PASS(WORD)?|SECRET|(^|_)KEY($|_)|TOKEN|CREDENTIAL)/i;

export const noSecretInEnv: ResourceValidationPolicy = {
  name: "no-secret-in-env",
  description:
    "No container env variable named like a password, secret, key or token carries a value; use *_FILE.",
  enforcementLevel: "mandatory",
  validateResource: (args, reportViolation) => {
    if (args.type !== CONTAINER) {
      return;
    }
    for (const entry of (args.props.envs ?? []) as string[]) {
      const [name, ...rest] = entry.split("=");
      const value = rest.join("=");
      if (SECRET_NAME.test(name) && !name.endsWith("_FILE") && value !== "") {
        reportViolation(
          `Container ${args.props.name ?? args.name} sets ${name} in its environment, where \`docker inspect\` shows it. ` +
            `Upload the value as a file and set ${name}_FILE instead.`,
        );
      }
    }
  },
};

export const noPublishedDatastores: ResourceValidationPolicy = {
  name: "no-published-datastores",
  description:
    "PostgreSQL and Redis containers publish no ports; they are reachable on the stack's network only.",
  enforcementLevel: "mandatory",
  validateResource: (args, reportViolation) => {
    if (args.type !== CONTAINER) {
      return;
    }
    const role = labelsOf(args.props)[LABELS.role];
    const image = String(args.props.image ?? "");
    const datastore =
      role === "postgres" || role === "redis" || /(^|\/)(postgres|redis)(:|$)/.test(image);
    if (datastore && ((args.props.ports ?? []).length > 0 || args.props.publishAllPorts === true)) {
      reportViolation(
        `Container ${args.props.name ?? args.name} (${role ?? image}) publishes ports. Remove \`ports\`: datastores are never published.`,
      );
    }
  },
};

function isProduction(resources: PolicyResource[]): boolean {
  return resources.some(
    (r) => r.type === VOLUME && labelsOf(r.props)[LABELS.environment] === "production",
  );
}

// By resource name, the one thing the program keeps stable (the URN): a hook's command line may change
// without the hook changing, and a command that merely looks like a backup is not the pre-deploy hook.
const isHook = (r: PolicyResource, name: HookName) => r.type === COMMAND && r.name === name;

export const backupBeforeDeploy: StackValidationPolicy = {
  name: "backup-before-deploy",
  description:
    "On production the migrate hook depends on the pre-deploy drill hook, which depends on the pre-deploy backup hook.",
  enforcementLevel: "mandatory",
  validateStack: (args, reportViolation) => {
    if (!isProduction(args.resources)) {
      return;
    }
    const migrate = args.resources.find((r) => isHook(r, HOOKS.migrate));
    if (!migrate) {
      reportViolation(
        "Production stack has no `migrate` hook: migrations must run on every deploy, after the pre-deploy backup.",
      );
      return;
    }
    const drill = migrate.dependencies.find((d) => isHook(d, HOOKS.preDeployDrill));
    if (!drill) {
      reportViolation(
        `On production the \`migrate\` hook must depend on the pre-deploy drill hook \`${HOOKS.preDeployDrill}\`: ` +
          "a backup is migrated over only once it has been restored in scratch space. Keep `edms:backup.drillBeforeDeploy` true and the dependsOn edge in components/edms.ts.",
      );
    }
    const backup = (drill ?? migrate).dependencies.find((d) => isHook(d, HOOKS.preDeployBackup));
    if (!backup) {
      reportViolation(
        `On production the \`${drill ? drill.name : HOOKS.migrate}\` hook must depend on the pre-deploy backup hook \`${HOOKS.preDeployBackup}\`. ` +
          "Keep `edms:backup.beforeDeploy` true and the dependsOn edge in components/edms.ts.",
      );
    }
  },
};

export const productionScheduledBackups: StackValidationPolicy = {
  name: "production-scheduled-backups",
  description:
    "A production stack runs the scheduler container (edms.role=scheduler, restart unless-stopped) that takes its scheduled backups from the Docker host.",
  enforcementLevel: "mandatory",
  validateStack: (args, reportViolation) => {
    if (!isProduction(args.resources)) {
      return;
    }
    const scheduler = args.resources.find(
      (r) => r.type === CONTAINER && labelsOf(r.props)[LABELS.role] === "scheduler",
    );
    if (!scheduler) {
      reportViolation(
        "Production stack has no scheduler container (label edms.role=scheduler): production is backed up on a schedule from the Docker host, not only before deploys. " +
          "Keep `edms:backup.schedule` set (it cannot be `off` there) and the Scheduler in components/edms.ts.",
      );
      return;
    }
    if (scheduler.props.restart !== "unless-stopped" && scheduler.props.restart !== "always") {
      reportViolation(
        `The scheduler container ${scheduler.props.name ?? scheduler.name} has restart \`${scheduler.props.restart ?? "no"}\`: after a host reboot no backup would be taken. Set \`restart: "unless-stopped"\`.`,
      );
    }
  },
};

const networksOf = (r: PolicyResource): unknown[] =>
  ((r.props.networksAdvanced ?? []) as { name?: unknown }[]).map((n) => n.name);
const roleOf = (r: PolicyResource) => labelsOf(r.props)[LABELS.role];

export const segmentedNetworks: StackValidationPolicy = {
  name: "segmented-networks",
  description:
    "PostgreSQL and Redis sit only on the stack's `internal` networks, and the proxy on none of those: a foothold in the internet-facing proxy reaches no datastore.",
  enforcementLevel: "mandatory",
  validateStack: (args, reportViolation) => {
    const internal = new Set(
      args.resources
        .filter((r) => r.type === NETWORK && r.props.internal === true)
        .map((r) => r.props.name),
    );
    const containers = args.resources.filter((r) => r.type === CONTAINER);
    const datastoreNetworks = new Set<unknown>();
    for (const c of containers.filter((r) => ["postgres", "redis"].includes(roleOf(r)))) {
      const networks = networksOf(c);
      if (networks.length === 0) {
        reportViolation(
          `Container ${c.props.name ?? c.name} (${roleOf(c)}) is on Docker's default bridge. Put it on the stack's internal data network (components/network.ts).`,
        );
      }
      // A name not known yet (a preview of a new network) is judged on the next run.
      for (const name of networks.filter((n) => typeof n === "string")) {
        datastoreNetworks.add(name);
        if (!internal.has(name)) {
          reportViolation(
            `Container ${c.props.name ?? c.name} (${roleOf(c)}) is on network ${name}, which is not \`internal\`. Datastores sit only on the stack's internal data network.`,
          );
        }
      }
    }
    for (const proxy of containers.filter((r) => roleOf(r) === "proxy")) {
      for (const name of networksOf(proxy).filter((n) => datastoreNetworks.has(n))) {
        reportViolation(
          `The proxy ${proxy.props.name ?? proxy.name} is on network ${String(name)} with PostgreSQL or Redis. Keep it on the front network only.`,
        );
      }
    }
  },
};

const WILDCARD_IPS = ["", "0.0.0.0", "::"];
const envOf = (r: { props: Record<string, any> }): Map<string, string> =>
  new Map(
    ((r.props.envs ?? []) as string[]).map((e) => {
      const [name, ...rest] = e.split("=");
      return [name, rest.join("=")];
    }),
  );

/** The proxy publishes HTTPS, uploads its certificate and only redirects on the plain port. */
function proxyServesTls(proxy: PolicyResource): boolean {
  const uploads = (proxy.props.uploads ?? []) as { file?: string; content?: unknown }[];
  const config = uploads.find((u) => u.file === PROXY_MAIN_CONFIG)?.content;
  const ports = (proxy.props.ports ?? []) as { internal?: number }[];
  return (
    ports.some((p) => p.internal === PROXY_HTTPS_PORT) &&
    uploads.some((u) => u.file === PROXY_TLS_PEM) &&
    typeof config === "string" &&
    httpFrontendRedirects(config)
  );
}

/** What is wrong with how one production container is reached, if anything. */
function httpsViolations(c: PolicyResource): string[] {
  const name = c.props.name ?? c.name;
  const found: string[] = [];
  const ports = (c.props.ports ?? []) as { ip?: string }[];
  const open = ports.some((p) => WILDCARD_IPS.includes(p.ip ?? ""));
  if ((open || c.props.publishAllPorts === true) && !(roleOf(c) === "proxy" && proxyServesTls(c))) {
    found.push(
      `Container ${name} publishes plain HTTP on every interface of a production host. Terminate TLS at the proxy (\`edms:proxy.tls\`: its plain port then only redirects to HTTPS) or, behind a TLS-terminating upstream, set \`edms:tlsUpstream: true\` (the port binds to \`edms:bindAddress\`, default 127.0.0.1).`,
    );
  }
  if (["web", "worker"].includes(roleOf(c))) {
    const env = envOf(c);
    const hosts = (env.get(ALLOWED_HOSTS_ENV) ?? "").split(",").filter(Boolean);
    if (hosts.length === 0 || hosts.includes("*")) {
      found.push(
        `Container ${name} answers to any host name (${ALLOWED_HOSTS_ENV} ${hosts.length ? "holds *" : "unset"}). Set \`edms:django.allowedHosts\` to the names users reach production by.`,
      );
    }
    if (env.get(HTTPS_ENV) !== "1") {
      found.push(
        `Container ${name} is not told it is served over HTTPS (${HTTPS_ENV}=1): its cookies would not be marked secure. Set \`edms:proxy.tls\` or \`edms:tlsUpstream\`.`,
      );
    }
    found.push(...offHostTlsViolations(name, env));
  }
  return found;
}

export const productionHttps: StackValidationPolicy = {
  name: "production-https",
  description:
    "A production stack serves HTTPS only: no container publishes plain HTTP on every interface (the proxy's plain port only redirects when TLS ends there; otherwise ports bind to a host address for a TLS upstream), and Django knows its allowed hosts and that it is served over HTTPS. It reaches an external database with verify-full and a media bucket over https only.",
  enforcementLevel: "mandatory",
  validateStack: (args, reportViolation) => {
    if (!isProduction(args.resources)) {
      return;
    }
    for (const c of args.resources.filter((r) => r.type === CONTAINER)) {
      httpsViolations(c).forEach((message) => reportViolation(message));
    }
  },
};

export const productionImagesByDigest: StackValidationPolicy = {
  name: "production-images-by-digest",
  description:
    "A production stack pulls every image by digest (`…@sha256:`), never by a tag its registry can move to other content: the release (`edms:releaseDigest`), PostgreSQL, Redis, the proxy, the scheduler's bases and edms-ops' helper image (policy/images.ts).",
  enforcementLevel: "mandatory",
  validateStack: (args, reportViolation) => {
    if (isProduction(args.resources)) {
      unpinnedImageReports(args.resources).forEach((message) => reportViolation(message));
    }
  },
};

export const appNotSuperuser: ResourceValidationPolicy = {
  name: "app-not-superuser",
  description:
    "web and worker connect to PostgreSQL as the application role, never as the superuser, and hold no superuser password: an SQL injection in the app cannot run programs, read server files or change the schema.",
  enforcementLevel: "mandatory",
  validateResource: (args, reportViolation) => {
    if (args.type !== CONTAINER || !["web", "worker"].includes(labelsOf(args.props)[LABELS.role])) {
      return;
    }
    const name = args.props.name ?? args.name;
    const env = envOf(args);
    const uploads = ((args.props.uploads ?? []) as { file?: string }[]).map((u) => u.file);
    if (env.get("POSTGRES_USER") !== APP_DB_USER) {
      reportViolation(
        `Container ${name} connects to PostgreSQL as ${env.get("POSTGRES_USER") ?? "the image's default user"}, not as the application role ${APP_DB_USER}. Give it djangoEnvironment(settings, "app") (model/containers.ts).`,
      );
    }
    if (uploads.includes(SUPERUSER_PASSWORD_FILE)) {
      reportViolation(
        `Container ${name} holds the database superuser's password (${SUPERUSER_PASSWORD_FILE}). Upload only the application role's (${APP_DB_PASSWORD_FILE}).`,
      );
    }
  },
};

/** Where an engine's socket is by default; a host path that is one of them or a folder above one exposes it. */
const ENGINE_SOCKETS = [
  "/var/run/docker.sock",
  "/run/docker.sock",
  "/run/containerd/containerd.sock",
  "/run/podman/podman.sock",
];
/** Folders of engines' sockets and state (rootless ones under /run/user/<uid>): anything in them too. */
const ENGINE_FOLDERS = /^\/(var\/)?run\/(docker|containerd|podman|user)(\/|$)/;

/** A host path that gives a container an engine's API: a socket, a folder that holds one, or one's folder. */
export function exposesEngine(hostPath: string): boolean {
  // `.` and `..` resolved as the engine resolves them (from /: `/srv/../var/run` is /var/run); symlinks on the
  // host are beyond what a preview can see.
  const clean = posix.resolve("/", hostPath);
  return (
    /(^|\/)(docker|containerd|podman)[^/]*\.sock$/.test(clean) ||
    ENGINE_FOLDERS.test(clean) ||
    ENGINE_SOCKETS.some((socket) => clean === "/" || socket.startsWith(`${clean}/`))
  );
}

export const noEngineSocket: ResourceValidationPolicy = {
  name: "no-engine-socket",
  description:
    "No container mounts a container engine's socket (or a folder holding one): the socket is root on the host, and any code that reached such a container would own every volume, backups included.",
  enforcementLevel: "mandatory",
  validateResource: (args, reportViolation) => {
    if (args.type === VOLUME) {
      // The local driver's bind (`type: none, o: bind, device: <host path>`): a named volume that is a host
      // folder, as good as a bind mount of it.
      const opts = (args.props.driverOpts ?? {}) as Record<string, unknown>;
      const device = opts.device;
      if (
        typeof device === "string" &&
        /\bbind\b/.test(String(opts.o ?? "")) &&
        exposesEngine(device)
      ) {
        reportViolation(
          `Volume ${args.props.name ?? args.name} binds ${device}, which gives any container mounting it the container engine's API (root on the host). Remove its driverOpts.`,
        );
      }
      return;
    }
    if (args.type !== CONTAINER) {
      return;
    }
    const volumes = (args.props.volumes ?? []) as { hostPath?: string }[];
    const mounts = (args.props.mounts ?? []) as { source?: string; type?: string }[];
    const paths = [
      ...volumes.map((v) => v.hostPath),
      ...mounts.filter((m) => m.type === "bind").map((m) => m.source),
    ].filter((p): p is string => typeof p === "string");
    for (const path of paths.filter(exposesEngine)) {
      reportViolation(
        `Container ${args.props.name ?? args.name} mounts ${path}, which gives it the container engine's API (root on the host). Remove the mount; scheduled backups need none (components/scheduler.ts).`,
      );
    }
  },
};

export const policies = [
  productionDataProtected,
  noSecretInEnv,
  noPublishedDatastores,
  backupBeforeDeploy,
  productionScheduledBackups,
  segmentedNetworks,
  productionHttps,
  appNotSuperuser,
  productionImagesByDigest,
  noEngineSocket,
];
