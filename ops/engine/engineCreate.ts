/**
 * The create body of a `docker run --network none …` of edms-ops' helpers, for engineRun.ts, which runs it on
 * the local engine's socket with the network disabled (`NetworkDisabled`, which the CLI has no flag for).
 *
 * Only argv that dockerRun.ts builds is mapped, every flag onto the API's create body exactly as the CLI maps
 * it (cli/command/container/opts.go); anything else stays on the CLI.
 */
import { NAME } from "./engineApi";

export interface CreateSpec {
  readonly name?: string;
  readonly detach: boolean;
  readonly stdin: boolean;
  /** `--rm`: the run ends once the engine has removed it. */
  readonly autoRemove: boolean;
  readonly body: Record<string, unknown>;
}

const MIB = 1024 * 1024;

/** What the flags before the image asked for. */
interface Flags {
  detach: boolean;
  stdin: boolean;
  name?: string;
  network?: string;
  entrypoint?: string;
  user?: string;
  readonly env: string[];
  readonly labels: Record<string, string>;
  readonly host: Record<string, unknown>;
  readonly logOpts: Record<string, string>;
  readonly security: string[];
  readonly capAdd: string[];
  readonly capDrop: string[];
  readonly tmpfs: Record<string, string>;
  readonly binds: string[];
  readonly volumes: Record<string, object>;
  readonly mounts: Record<string, unknown>[];
}

/** As the CLI normalises capabilities (the engine takes either). */
const capability = (value: string) =>
  value === "ALL" || value.startsWith("CAP_") ? value : `CAP_${value}`;

/**
 * The flags that take a value, each applying it as the CLI does; false: a value the API would not take the
 * same way (the CLI then runs it).
 */
const VALUE_FLAGS: Record<string, (flags: Flags, value: string) => boolean> = {
  "--name": (f, v) => NAME.test(v) && !!(f.name = v),
  "--network": (f, v) => !!(f.network = v),
  "--user": (f, v) => !!(f.user = v),
  "--entrypoint": (f, v) => !!(f.entrypoint = v),
  "--log-driver": (f, v) => !!(f.host.LogConfig = { Type: v, Config: f.logOpts }),
  "--log-opt": (f, v) => set(f.logOpts, pair(v)),
  "--security-opt": (f, v) => v === "no-new-privileges" && f.security.push(v) > 0,
  "--cap-add": (f, v) => /^[A-Z_]+$/.test(v) && f.capAdd.push(capability(v)) > 0,
  "--cap-drop": (f, v) => /^[A-Z_]+$/.test(v) && f.capDrop.push(capability(v)) > 0,
  "--tmpfs": (f, v) => {
    const at = v.indexOf(":");
    f.tmpfs[at < 0 ? v : v.slice(0, at)] = at < 0 ? "" : v.slice(at + 1);
    return v.startsWith("/");
  },
  "--label": (f, v) => set(f.labels, pair(v)),
  "-e": (f, v) => !!pair(v) && f.env.push(v) > 0,
  "-v": (f, v) => {
    if (/^\/[^:]*$/.test(v)) {
      f.volumes[v] = {};
      return true;
    }
    return /^[A-Za-z0-9][A-Za-z0-9_.-]*:\/[^:]*(:ro)?$/.test(v) && f.binds.push(v) > 0;
  },
  "--mount": (f, v) => {
    const mount = volumeMount(v);
    return !!mount && f.mounts.push(mount) > 0;
  },
};

function set(map: Record<string, string>, kv: [string, string] | undefined): boolean {
  if (kv) {
    map[kv[0]] = kv[1];
  }
  return !!kv;
}

/** A flag without a value (`--memory=256m` style included); false: not one of them. */
function switchFlag(f: Flags, flag: string): boolean {
  const sized = /^--(memory|memory-swap)=(\d+)m$/.exec(flag);
  const pids = /^--pids-limit=(\d+)$/.exec(flag);
  if (sized) {
    f.host[sized[1] === "memory" ? "Memory" : "MemorySwap"] = Number(sized[2]) * MIB;
  } else if (pids) {
    f.host.PidsLimit = Number(pids[1]);
  } else if (flag === "-d" || flag === "-i") {
    f[flag === "-d" ? "detach" : "stdin"] = true;
  } else if (flag === "--rm" || flag === "--read-only") {
    f.host[flag === "--rm" ? "AutoRemove" : "ReadonlyRootfs"] = true;
  } else {
    return false;
  }
  return true;
}

/** `k=v` split at its first `=`; undefined when there is none. */
function pair(value: string): [string, string] | undefined {
  const at = value.indexOf("=");
  return at > 0 ? [value.slice(0, at), value.slice(at + 1)] : undefined;
}

/** `--mount type=volume,src=…,dst=…[,readonly][,volume-label=k=v…]` as the API's mount. */
function volumeMount(value: string): Record<string, unknown> | undefined {
  const mount: Record<string, unknown> = {};
  const labels: Record<string, string> = {};
  for (const field of value.split(",")) {
    const [key, rest] = pair(field) ?? [field, undefined];
    if (key === "readonly" && rest === undefined) {
      mount.ReadOnly = true;
    } else if (key === "type" && rest === "volume") {
      mount.Type = "volume";
    } else if (key === "src" && rest) {
      mount.Source = rest;
    } else if (key === "dst" && rest?.startsWith("/")) {
      mount.Target = rest;
    } else if (key === "volume-label" && rest && pair(rest)) {
      const [label, labelValue] = pair(rest)!;
      labels[label] = labelValue;
    } else {
      return undefined;
    }
  }
  if (!mount.Type || !mount.Source || !mount.Target) {
    return undefined;
  }
  return Object.keys(labels).length
    ? { ...mount, VolumeOptions: { Labels: labels, DriverConfig: {} } }
    : mount;
}

/**
 * The create `args` asks for (`run` with `--network none`), when every flag is one dockerRun.ts writes and the
 * API takes as the CLI does; else undefined.
 */
export function createSpec(args: readonly string[]): CreateSpec | undefined {
  if (args[0] !== "run") {
    return undefined;
  }
  const f: Flags = {
    detach: false,
    stdin: false,
    env: [],
    labels: {},
    host: {},
    logOpts: {},
    security: [],
    capAdd: [],
    capDrop: [],
    tmpfs: {},
    binds: [],
    volumes: {},
    mounts: [],
  };
  let i = 1;
  for (; i < args.length && args[i].startsWith("-"); i += 1) {
    if (switchFlag(f, args[i])) {
      continue;
    }
    const apply = VALUE_FLAGS[args[i]];
    const value = args[(i += 1)];
    if (!apply || value === undefined || !apply(f, value)) {
      return undefined;
    }
  }
  const [image, ...cmd] = args.slice(i);
  // Only the network-less helpers gain anything; every other network stays on the CLI.
  if (f.network !== "none" || !image || !f.host.LogConfig) {
    return undefined;
  }
  // The CLI refuses options for the driver "none"; the engine would take them.
  if ((f.host.LogConfig as { Type: string }).Type === "none" && Object.keys(f.logOpts).length) {
    return undefined;
  }
  return {
    name: f.name,
    detach: f.detach,
    stdin: f.stdin,
    autoRemove: f.host.AutoRemove === true,
    body: createBody(f, image, cmd),
  };
}

function createBody(f: Flags, image: string, cmd: string[]): Record<string, unknown> {
  const attached = !f.detach;
  return {
    Image: image,
    ...(cmd.length ? { Cmd: cmd } : {}),
    ...(f.entrypoint !== undefined ? { Entrypoint: [f.entrypoint] } : {}),
    ...(f.user !== undefined ? { User: f.user } : {}),
    Env: f.env,
    Labels: f.labels,
    OpenStdin: f.stdin,
    // As the CLI sets them for `run`: attached unless detached; stdin closed when the client's closes.
    AttachStdin: f.stdin && attached,
    AttachStdout: attached,
    AttachStderr: attached,
    StdinOnce: f.stdin && attached,
    Tty: false,
    Volumes: f.volumes,
    NetworkDisabled: true,
    HostConfig: {
      ...f.host,
      NetworkMode: "none",
      RestartPolicy: { Name: "no" },
      Binds: f.binds,
      Mounts: f.mounts,
      Tmpfs: f.tmpfs,
      SecurityOpt: f.security,
      CapAdd: f.capAdd,
      CapDrop: f.capDrop,
    },
  };
}
