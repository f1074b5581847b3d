/**
 * Reads of a stack's volumes asked for at about the same time share one helper container. `status` asks for
 * about ten (the backups, the first release's folders, two markers, the drill records, the history, the
 * schedule, the lock holder…), each once its own `docker volume inspect` answered; ten containers started at
 * once on a busy two-core host took 4–7 s each, where one takes 0.7 s. Only quick reads (cat, ls) are
 * batched: a read that waits for the slowest of its batch holds up whatever its caller reads next.
 *
 * Each read still runs as its own `sh -euc SCRIPT edms-ops ARGS…`, side by side with the others inside the
 * container, and gets its own exit code, stdout and stderr back: the container prints, per read, one header
 * line `CODE STDOUT_BYTES STDERR_BYTES` and then those bytes, so no output can be mistaken for a boundary.
 * Scripts and arguments are positional parameters of the container's script, never spliced into its text.
 * A batch whose container fails or prints an answer it cannot have meant (a limit it ran into, a read
 * that left a process writing) is run again one container per read, as before: reads change nothing.
 */
import { Writable } from "stream";
import { commandFailed, docker, RunResult } from "./docker";

/** A batch starts once no read joined it for QUIET_MS, or MAX_WAIT_MS after its first read. */
const QUIET_MS = 30;
const MAX_WAIT_MS = 200;

export interface BatchedRead {
  readonly script: string;
  readonly args: readonly string[];
  readonly allowFailure: boolean;
  /** `$0` of the read's shell, as its own container has it. */
  readonly zero: string;
}

interface Queued extends BatchedRead {
  readonly resolve: (result: RunResult) => void;
  readonly reject: (error: Error) => void;
}

/** `dockerArgs(script, args)`: the `docker run` arguments of a container running `sh -euc script …args`. */
export type DockerArgs = (script: string, args: readonly string[]) => string[];

interface Batch {
  readonly dockerArgs: DockerArgs;
  readonly queue: Queued[];
  readonly started: number;
  timer?: NodeJS.Timeout;
}

const batches = new Map<string, Batch>();

/**
 * What `read`'s own container would have returned, or thrown. Reads share a container only when theirs
 * would differ in nothing but the script and its arguments (image, volumes, network, labels, limits), and
 * at most `most` of them (what the containers' process and memory limits allow: helperBatch).
 */
export function batchedRead(
  dockerArgs: DockerArgs,
  read: BatchedRead,
  most: number,
): Promise<RunResult> {
  if (most < 2) {
    return new Promise((resolve, reject) => runAlone(dockerArgs, { ...read, resolve, reject }));
  }
  const key = JSON.stringify(dockerArgs("", []));
  return new Promise((resolve, reject) => {
    const batch = batches.get(key) ?? { dockerArgs, queue: [], started: Date.now() };
    batches.set(key, batch);
    batch.queue.push({ ...read, resolve, reject });
    clearTimeout(batch.timer);
    const start = () => {
      batches.delete(key);
      void runBatch(batch.dockerArgs, batch.queue);
    };
    if (batch.queue.length >= most) {
      start();
    } else {
      const wait = Math.min(QUIET_MS, batch.started + MAX_WAIT_MS - Date.now());
      batch.timer = setTimeout(start, Math.max(0, wait));
    }
  });
}

/**
 * How many reads one helper container may run at once under `edms:limits.helpers`: each may start a
 * restic (threads) or a pipeline, and hold its output in the container's /tmp, which is memory.
 */
export function helperBatch(limits: { readonly memoryMb: number; readonly pids: number }): number {
  return Math.floor(Math.min(limits.pids / 32, limits.memoryMb / 256));
}

/**
 * The container's script: read i runs in the background with its output in files, then each is printed
 * after its header, in order, exactly as many bytes as the header says. Read i's script is `${p}` and its
 * `$0` and arguments the positional parameters after it.
 */
export function batchScript(reads: readonly BatchedRead[]): { script: string; args: string[] } {
  const args: string[] = [];
  // Without a scratch folder the container fails, and the reads run one by one.
  const lines = ['d="$(mktemp -d)"', "set +e"];
  reads.forEach((read, i) => {
    const at = (value: string) => `"\${${args.push(value)}}"`;
    const call = [at(read.script), at(read.zero), ...read.args.map(at)].join(" ");
    lines.push(`{ sh -euc ${call} >"$d/o${i}" 2>"$d/e${i}" </dev/null; echo $? >"$d/c${i}"; } &`);
  });
  lines.push(
    "wait",
    `i=0; while [ "$i" -lt ${reads.length} ]; do`,
    '  o=$(($(wc -c <"$d/o$i"))); e=$(($(wc -c <"$d/e$i")))',
    '  printf \'%s %s %s\\n\' "$(cat "$d/c$i")" "$o" "$e"',
    '  head -c "$o" "$d/o$i"; head -c "$e" "$d/e$i"; i=$((i + 1))',
    "done",
    'rm -rf "$d"',
  );
  return { script: lines.join("\n"), args };
}

/** Splits the container's output into the reads' results; null when it is not whole. */
export function parseBatchOutput(output: Buffer, count: number): RunResult[] | null {
  const results: RunResult[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    const end = output.indexOf(0x0a, at);
    const header = end < 0 ? null : /^(\d+) (\d+) (\d+)$/.exec(output.subarray(at, end).toString());
    if (!header) {
      return null;
    }
    const [code, outBytes, errBytes] = header.slice(1).map(Number);
    const outEnd = end + 1 + outBytes;
    const errEnd = outEnd + errBytes;
    if (errEnd > output.length) {
      return null;
    }
    results.push({
      code,
      stdout: output.subarray(end + 1, outEnd).toString("utf8"),
      stderr: output.subarray(outEnd, errEnd).toString("utf8"),
    });
    at = errEnd;
  }
  return at === output.length ? results : null;
}

/** One read in a container of its own. */
function runAlone(dockerArgs: DockerArgs, read: Queued): void {
  docker(dockerArgs(read.script, read.args), { allowFailure: read.allowFailure }).then(
    read.resolve,
    read.reject,
  );
}

async function runBatch(dockerArgs: DockerArgs, queue: readonly Queued[]): Promise<void> {
  if (queue.length === 1) {
    return runAlone(dockerArgs, queue[0]);
  }
  const { script, args } = batchScript(queue);
  const chunks: Buffer[] = [];
  const stdout = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk);
      done();
    },
  });
  const results = await docker(dockerArgs(script, args), { allowFailure: true, stdout }).then(
    (container) =>
      container.code === 0 ? parseBatchOutput(Buffer.concat(chunks), queue.length) : null,
    () => null,
  );
  if (!results) {
    queue.forEach((read) => runAlone(dockerArgs, read));
    return;
  }
  queue.forEach((read, i) => {
    const result = results[i];
    if (result.code !== 0 && !read.allowFailure) {
      read.reject(commandFailed("docker", dockerArgs(read.script, read.args), result));
    } else {
      read.resolve(result);
    }
  });
}
