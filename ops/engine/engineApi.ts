/**
 * The engine's own API on its local unix socket, for the read-only questions edms-ops asks most: is this
 * container there and running, does this volume exist, which containers carry these labels, which image is
 * this. Each `docker` CLI start costs ~60 ms of CPU and 50–200 ms of waiting, and a restore asks ~40 such
 * questions; the socket answers in about a millisecond.
 *
 * Only argv shapes whose CLI output is exactly the API's answer are served here, and only when the CLI would
 * talk to that same socket: DOCKER_HOST unset or `unix://`, no context chosen (the CLI's own order: DOCKER_HOST,
 * then DOCKER_CONTEXT, then the config file's currentContext; an empty variable counts as unset). Everything
 * else, and any question the socket does not answer (no socket, refused, an unexpected status), goes to the
 * CLI (docker.ts), which stays the way anything on the engine is changed but for the network-less helpers'
 * runs (engineRun.ts).
 */
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";

export interface Answer {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const DEFAULT_SOCKET = "/var/run/docker.sock";
/** Container and volume names or ids, and image references, as the engine allows them; else the CLI. */
export const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const IMAGE = /^[A-Za-z0-9][A-Za-z0-9_.:/@-]*$/;
const QUIET_ALL = new Set(["-a", "-q", "-aq", "-qa", "--all", "--quiet"]);

const configContexts = new Map<string, string | undefined>();

/** The config file's currentContext ("" when none; undefined when the file cannot be read as JSON). */
function currentContext(env: NodeJS.ProcessEnv): string | undefined {
  const dir = env.DOCKER_CONFIG || path.join(os.homedir(), ".docker");
  if (!configContexts.has(dir)) {
    let context: string | undefined;
    try {
      const config = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")) as {
        currentContext?: unknown;
      };
      context = typeof config.currentContext === "string" ? config.currentContext : "";
    } catch (error) {
      context = (error as NodeJS.ErrnoException).code === "ENOENT" ? "" : undefined;
    }
    configContexts.set(dir, context);
  }
  return configContexts.get(dir);
}

/** The socket the docker CLI would use when it is this machine's unix socket; undefined: ask the CLI. */
export function localSocket(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.EDMS_DOCKER_API === "off") {
    return undefined;
  }
  // As the CLI resolves it (cli/command/cli.go resolveContextName): an empty variable counts as unset.
  const host = env.DOCKER_HOST;
  if (host) {
    return host.startsWith("unix://") ? host.slice("unix://".length) || undefined : undefined;
  }
  const context = env.DOCKER_CONTEXT || currentContext(env);
  return context === "" || context === "default" ? DEFAULT_SOCKET : undefined;
}

interface Reply {
  readonly status: number;
  readonly body: string;
}

/**
 * One request on the socket (a JSON body when given); undefined when it does not answer (no socket, refused,
 * cut off, no answer within a minute).
 */
export function request(
  socket: string,
  method: "GET" | "POST" | "DELETE",
  urlPath: string,
  body?: unknown,
  /** Milliseconds without an answer before it counts as none; 0: no limit. */
  timeout = 60_000,
): Promise<Reply | undefined> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve) => {
    const sent = http.request(
      {
        socketPath: socket,
        // A connection of its own (no keep-alive): one the engine closed, restarting, is never reused.
        agent: false,
        method,
        path: urlPath,
        headers: {
          Host: "docker",
          ...(payload === undefined
            ? {}
            : { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) }),
        },
        timeout,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () =>
          resolve({
            status: response.statusCode ?? 0,
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        );
        response.on("error", () => resolve(undefined));
      },
    );
    sent.on("timeout", () => sent.destroy());
    sent.on("error", () => resolve(undefined));
    sent.end(payload);
  });
}

export const get = (socket: string, urlPath: string) => request(socket, "GET", urlPath);

type Kind = "container" | "volume" | "image";
const PATHS: Record<Kind, (name: string) => string> = {
  container: (name) => `/containers/${name}/json`,
  volume: (name) => `/volumes/${name}`,
  image: (name) => `/images/${name}/json`,
};

/** The daemon's reason for a 404, as the CLI prints it. */
export function daemonError(body: string): string {
  let message = body.trim();
  try {
    message = (JSON.parse(body) as { message?: string }).message ?? message;
  } catch {
    // not JSON: the body as it is
  }
  return `Error response from daemon: ${message}\n`;
}

/**
 * `docker <kind> inspect NAME…`: a JSON array of the objects found (the API's own JSON, as the CLI prints it),
 * the daemon's error for each missing one and exit 1 when any is missing. `found` is by name (undefined:
 * missing).
 */
async function inspect(socket: string, kind: Kind, names: readonly string[]) {
  const replies = await Promise.all(names.map((name) => get(socket, PATHS[kind](name))));
  if (replies.some((reply) => !reply || (reply.status !== 200 && reply.status !== 404))) {
    return undefined;
  }
  const found = replies.map((reply) =>
    reply!.status === 200 ? JSON.parse(reply!.body) : undefined,
  );
  const missing = replies.filter((reply) => reply!.status === 404);
  return {
    found,
    answer: {
      code: missing.length ? 1 : 0,
      stdout: `${JSON.stringify(found.filter(Boolean), null, 4)}\n`,
      stderr: missing.map((reply) => daemonError(reply!.body)).join(""),
    },
  };
}

/** `docker ps -aq --filter k=v …`: short ids, newest first, as the CLI lists them. */
async function listIds(socket: string, flags: readonly string[]): Promise<Answer | undefined> {
  const filters: Record<string, Record<string, boolean>> = {};
  let all = false;
  let quiet = false;
  for (let i = 0; i < flags.length; i += 1) {
    if (flags[i] === "--filter" && /^[a-z]+=/.test(flags[i + 1] ?? "")) {
      const [key, ...value] = flags[(i += 1)].split("=");
      filters[key] = { ...filters[key], [value.join("=")]: true };
    } else if (QUIET_ALL.has(flags[i])) {
      all ||= flags[i].includes("a");
      quiet ||= flags[i].includes("q");
    } else {
      return undefined;
    }
  }
  if (!quiet) {
    return undefined;
  }
  const query = `all=${all ? 1 : 0}&filters=${encodeURIComponent(JSON.stringify(filters))}`;
  const reply = await get(socket, `/containers/json?${query}`);
  if (reply?.status !== 200) {
    return undefined;
  }
  const ids = (JSON.parse(reply.body) as { Id: string }[]).map((c) => c.Id.slice(0, 12));
  return { code: 0, stdout: ids.map((id) => `${id}\n`).join(""), stderr: "" };
}

/** `docker image inspect NAME --format {{.Id}}` (or `-f {{.Id}}` before the name). */
async function imageId(socket: string, rest: readonly string[]): Promise<Answer | undefined> {
  const format = rest.findIndex((word) => word === "--format" || word === "-f");
  if (format < 0 || rest[format + 1] !== "{{.Id}}" || rest.length !== 3) {
    return undefined;
  }
  const name = rest.filter((_, i) => i !== format && i !== format + 1)[0];
  const inspected =
    IMAGE.test(name) && !name.includes("..") ? await inspect(socket, "image", [name]) : undefined;
  if (!inspected) {
    return undefined;
  }
  const ids = inspected.found.map((image?: { Id: string }) => `${image?.Id ?? ""}\n`).join("");
  return { ...inspected.answer, stdout: ids };
}

async function version(socket: string): Promise<Answer | undefined> {
  const reply = await get(socket, "/version");
  return reply?.status === 200
    ? {
        code: 0,
        stdout: `${(JSON.parse(reply.body) as { Version: string }).Version}\n`,
        stderr: "",
      }
    : undefined;
}

/**
 * The CLI's answer to `args` from the local socket, when `args` is one of the shapes above and the socket
 * answers; undefined: run the CLI.
 */
export async function answerLocally(args: readonly string[]): Promise<Answer | undefined> {
  const socket = localSocket();
  if (!socket) {
    return undefined;
  }
  const [verb, sub, ...rest] = args;
  if (verb === "version" && sub === "--format" && rest.join(" ") === "{{.Server.Version}}") {
    return version(socket);
  }
  if (verb === "ps") {
    return listIds(socket, args.slice(1));
  }
  if (verb === "image" && sub === "inspect") {
    return imageId(socket, rest);
  }
  if ((verb === "container" || verb === "volume") && sub === "inspect") {
    if (!rest.length || !rest.every((name) => NAME.test(name))) {
      return undefined;
    }
    return (await inspect(socket, verb, rest))?.answer;
  }
  return undefined;
}
