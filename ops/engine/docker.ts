/**
 * The docker CLI as a subprocess: it honours DOCKER_HOST (including ssh://), contexts and TLS settings
 * exactly as operators' own `docker` commands do, which a socket client library would not. Only a few
 * read-only questions, plain `docker exec` calls and runs of network-less helpers go to the local engine's
 * socket directly (engineApi.ts, engineExec.ts, engineRun.ts), and only where the CLI would use that same
 * socket.
 */
import { ChildProcessWithoutNullStreams, spawn } from "child_process";
import { PassThrough, Readable, Writable } from "stream";
import { failure } from "../core/errors";
import { z } from "zod";
import { parseJson } from "../core/json";
import { answerLocally } from "./engineApi";
import { execLocally } from "./engineExec";
import { runLocally } from "./engineRun";
import { engineless, engineNeeded, volumeMountedHere } from "./engineless";

export interface RunOptions {
  /** Data for stdin, or a stream piped into it. */
  readonly input?: string | Buffer | Readable;
  /** Receives stdout as it comes instead of buffering it. */
  readonly stdout?: Writable;
  /** Called with each stderr/stdout line (progress from long commands). */
  readonly onLine?: (line: string) => void;
  /** Return the result instead of throwing on a non-zero exit. */
  readonly allowFailure?: boolean;
  /** Kills the command when aborted (a pipeline whose other end has failed). */
  readonly signal?: AbortSignal;
  /**
   * Keep stdin open (no input) until the command ends: a container attached with `-i` then sees EOF when
   * this process dies, however it dies, and can stop its work with it.
   */
  readonly holdStdin?: boolean;
  /** Another Docker engine than the stack's for this one command (DOCKER_HOST of the docker CLI). */
  readonly dockerHost?: string;
  /** More environment for the command (never a secret: a file path, an application name). */
  readonly env?: Readonly<Record<string, string>>;
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function run(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const verb = args[0];
  if (command !== "docker" || (verb !== "exec" && verb !== "run") || engineless()) {
    return spawned(command, args, options);
  }
  // DOCKER_CONTENT_TRUST: the CLI resolves a run's image to a signed digest first; the socket would not.
  if (!socketServes(options, true) || (verb === "run" && process.env.DOCKER_CONTENT_TRUST)) {
    return spawned(command, args, options);
  }
  const input = options.input as string | Buffer | undefined;
  const local = verb === "exec" ? execLocally : runLocally;
  return local(args, input, options.onLine).then((answer) =>
    answer ? settled(args, options, answer) : spawned(command, args, options),
  );
}

/**
 * True when the engine's socket can serve a command with these options exactly as the CLI would: a read
 * takes none but allowFailure; an exec or a run also an input string or buffer (no stream), onLine and an
 * empty env.
 * Any other option (a stream out, an abort signal, a held stdin, another engine, environment for the CLI, or
 * one added later) keeps the command on the CLI.
 */
export function socketServes(options: RunOptions, exec: boolean): boolean {
  return Object.entries(options).every(
    ([key, value]) =>
      value === undefined ||
      key === "allowFailure" ||
      (exec && key === "input" && (typeof value === "string" || Buffer.isBuffer(value))) ||
      (exec && key === "onLine") ||
      (exec && key === "env" && Object.keys(value as object).length === 0),
  );
}

/** The socket's answer as the CLI's result would be: thrown when it failed and failure was not allowed. */
function settled(args: readonly string[], options: RunOptions, answer: RunResult): RunResult {
  if (answer.code !== 0 && !options.allowFailure) {
    throw commandFailed("docker", args, answer);
  }
  return answer;
}

function spawned(
  command: string,
  args: readonly string[],
  options: RunOptions,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ["pipe", "pipe", "pipe"],
      signal: options.signal,
      ...(options.dockerHost || options.env
        ? {
            env: {
              ...process.env,
              ...options.env,
              ...(options.dockerHost ? { DOCKER_HOST: options.dockerHost } : {}),
            },
          }
        : {}),
    });
    child.on("error", (error: NodeJS.ErrnoException) => {
      if (error.name !== "AbortError") {
        reject(spawnFailed(command, error)); // AbortError: killed on purpose; "close" reports it
      }
    });
    const output = collectOutput(child, options);
    feedStdin(child, options);
    child.on("close", (code, signal) => {
      const result = { code: code ?? (signal ? 128 : 1), ...output() };
      if (result.code !== 0 && !options.allowFailure) {
        reject(commandFailed(command, args, result));
      } else {
        resolve(result);
      }
    });
  });
}

/** Buffers stdout (or pipes it to `options.stdout`) and stderr, handing complete lines to `onLine`. */
function collectOutput(
  child: ChildProcessWithoutNullStreams,
  options: RunOptions,
): () => { stdout: string; stderr: string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let partial = "";
  const lines = (chunk: Buffer) => {
    if (options.onLine) {
      partial += chunk.toString("utf8");
      const parts = partial.split("\n");
      partial = parts.pop() ?? "";
      parts.filter((l) => l.trim()).forEach(options.onLine);
    }
  };
  if (options.stdout) {
    child.stdout.pipe(options.stdout, { end: false });
  } else {
    child.stdout.on("data", (chunk: Buffer) => {
      out.push(chunk);
      lines(chunk);
    });
  }
  child.stderr.on("data", (chunk: Buffer) => {
    err.push(chunk);
    lines(chunk);
  });
  return () => ({
    stdout: Buffer.concat(out).toString("utf8"),
    stderr: Buffer.concat(err).toString("utf8"),
  });
}

function feedStdin(child: ChildProcessWithoutNullStreams, options: RunOptions): void {
  child.stdin.on("error", () => undefined); // the child may exit before reading all input
  if (options.input instanceof Readable) {
    options.input.pipe(child.stdin);
  } else if (options.holdStdin) {
    child.on("close", () => child.stdin.destroy());
  } else {
    child.stdin.end(options.input ?? "");
  }
}

function spawnFailed(command: string, error: NodeJS.ErrnoException): Error {
  return error.code === "ENOENT"
    ? failure(
        `\`${command}\` is not installed or not on PATH.`,
        "Install it (e.g. apt-get install docker.io) and retry.",
      )
    : error;
}

export function commandFailed(command: string, args: readonly string[], result: RunResult): Error {
  const detail = (result.stderr || result.stdout).trim().split("\n").slice(-5).join("\n");
  return failure(
    `${command} ${describe(args)} failed (exit ${result.code}):
${detail}`,
    nextStep(detail),
  );
}

/** What to do about a failed docker command, most of all when something changed under the operation. */
function nextStep(detail: string): string {
  if (/Container \S+ is not running|No such container/.test(detail)) {
    return "A container this operation needs stopped or went away while it ran. See `edms-ops status`, start what is stopped (`docker start <name>`) or redeploy, then retry.";
  }
  if (/Cannot connect to the Docker daemon|error during connect/.test(detail)) {
    return "The Docker engine stopped answering. Check it (`docker info`), then retry.";
  }
  return "Fix the cause shown above (often a stopped container or a full disk), then run the same edms-ops command again.";
}

/** The first words of a command line for error messages (never the stdin, which may carry data). */
function describe(args: readonly string[]): string {
  const shown = args.slice(0, 4).join(" ");
  return args.length > 4 ? `${shown} …` : shown;
}

/**
 * `docker …`, through the CLI; the few read-only questions engineApi.ts serves exactly are answered by the
 * engine's local socket instead (same result, same failure), when its options allow (socketServes).
 */
export const docker = async (args: readonly string[], options?: RunOptions): Promise<RunResult> => {
  if (engineless()) {
    throw engineNeeded(`\`docker ${describe(args)}\``);
  }
  const answer = socketServes(options ?? {}, false) ? await answerLocally(args) : undefined;
  return answer ? settled(args, options ?? {}, answer) : run("docker", args, options);
};

/** The fields of `docker container inspect` that edms-ops reads; the rest passes through unchecked. */
export const ContainerInspectSchema = z.array(
  z.looseObject({
    Id: z.string(),
    Name: z.string(),
    Created: z.string(),
    Image: z.string(),
    State: z.looseObject({
      Running: z.boolean(),
      Status: z.string(),
      StartedAt: z.string().optional(),
      Health: z.looseObject({ Status: z.string() }).nullish(),
    }),
    Config: z.looseObject({ Labels: z.record(z.string(), z.string()).nullish() }),
  }),
);

export interface ContainerState {
  readonly exists: boolean;
  readonly running: boolean;
  readonly health?: string;
  readonly image?: string;
  readonly labels: Record<string, string>;
}

export async function inspectContainer(name: string): Promise<ContainerState> {
  const result = await docker(["container", "inspect", name], { allowFailure: true });
  if (result.code !== 0) {
    return { exists: false, running: false, labels: {} };
  }
  const [info] = parseJson(result.stdout, ContainerInspectSchema, `docker inspect ${name}`);
  return {
    exists: true,
    running: info.State.Running === true,
    health: info.State.Health?.Status,
    image: info.Image,
    labels: info.Config.Labels ?? {},
  };
}

/** Inspections in flight by volume: asked at once (status asks seven times), the engine is asked once. */
const volumeQueries = new Map<string, Promise<boolean>>();

export function volumeExists(name: string): Promise<boolean> {
  if (engineless()) {
    return Promise.resolve(volumeMountedHere(name));
  }
  const asked = volumeQueries.get(name);
  if (asked) {
    return asked;
  }
  const query = docker(["volume", "inspect", name], { allowFailure: true })
    .then((result) => result.code === 0)
    .finally(() => volumeQueries.delete(name));
  volumeQueries.set(name, query);
  return query;
}

export async function requireEngine(): Promise<void> {
  if (engineless()) {
    return; // the scheduler: no engine on purpose (engineless.ts)
  }
  const info = await docker(["version", "--format", "{{.Server.Version}}"], { allowFailure: true });
  if (info.code !== 0) {
    const host = process.env.DOCKER_HOST ?? "the local socket";
    throw failure(
      `No Docker engine answers at ${host}: ${info.stderr.trim().split("\n")[0]}.`,
      "Start dockerd or check `docker:host`.",
    );
  }
}

/**
 * Streams one command's stdout into another's stdin (e.g. `pg_dump` in the postgres container into a file
 * in the backups volume) without holding the data in memory. Both results are returned; the caller decides.
 * Either side failing ends the other: a consumer that stops reading (disk full, psql error) kills the
 * producer instead of leaving it blocked on a full pipe forever, and a producer that dies closes the
 * consumer's input.
 */
export async function pipeCommands(
  producer: (stdout: Writable, signal: AbortSignal) => Promise<RunResult>,
  consumer: (stdin: Readable) => Promise<RunResult>,
): Promise<[RunResult, RunResult]> {
  const pipe = new PassThrough();
  const abort = new AbortController();
  const consumed = consumer(pipe).then((result) => {
    if (!pipe.writableEnded) {
      // A consumer that failed ends the producer. One that succeeded before the producer closed (tar -x
      // stops at the end-of-archive blocks while `docker exec` is still exiting) must not: killing it then
      // turned a complete transfer into a failure (found by the issue-11 work).
      if (result.code !== 0) {
        abort.abort();
        // Whatever the consumer piped it into (a hash on the way, say) is read by nobody now: left piped, it
        // would fill and hold the producer's output, which then never ends, and the command never returns.
        pipe.unpipe();
      }
      pipe.resume(); // drain whatever is still in flight
    }
    return result;
  });
  const produced = producer(pipe, abort.signal).finally(() => pipe.end());
  return Promise.all([produced, consumed]);
}

/** Ids of the stack's containers with label `edms.role=<role>`, running or not. */
export async function containerIdsByRole(
  stack: string,
  role: string,
  status?: "exited" | "created",
): Promise<string[]> {
  const listed = await docker([
    "ps",
    "-aq",
    "--filter",
    `label=edms.stack=${stack}`,
    "--filter",
    `label=edms.role=${role}`,
    ...(status ? ["--filter", `status=${status}`] : []),
  ]);
  return listed.stdout.split("\n").filter(Boolean);
}

/**
 * Removes the stack's containers of one role still in the "created" state `minutes` after their creation (by
 * the engine's clock, asked of `now` only when there are any): a run killed between `docker create` and
 * `start` left them, with whatever was copied in. A younger one may be another process's on its way up.
 */
export async function removeStaleCreated(
  stack: string,
  role: string,
  now: () => Promise<string>,
  minutes: number,
): Promise<void> {
  const ids = await containerIdsByRole(stack, role, "created");
  if (!ids.length) {
    return;
  }
  const inspected = await docker(["inspect", "-f", "{{.Id}} {{.Created}}", ...ids], {
    allowFailure: true,
  });
  const cutoff = Date.parse(await now()) - minutes * 60_000;
  const stale = inspected.stdout
    .split("\n")
    .map((line) => line.trim().split(" "))
    .filter(([id, created]) => id && Date.parse(created) < cutoff)
    .map(([id]) => id);
  if (stale.length) {
    await docker(["rm", "-f", "-v", ...stale], { allowFailure: true });
  }
}

/** Removes (with their anonymous volumes) the stack's containers of one role: leftovers of killed runs. */
export async function removeByRole(stack: string, role: string, status?: "exited"): Promise<void> {
  const ids = await containerIdsByRole(stack, role, status);
  if (ids.length) {
    await docker(["rm", "-f", "-v", ...ids], { allowFailure: true });
  }
}
