/**
 * Reads of a stack's volumes asked for at about the same time share one helper container. `status` asks for
 * about ten (the backups, the first release's folders, two markers, the drill records, the history, the
 * schedule, the lock holder…), each once its own `docker volume inspect` answered; ten containers started at
 * once on a busy two-core host took 4–7 s each, where one takes 0.7 s.
 *
 * Each read still runs as its own `sh -euc SCRIPT edms-ops ARGS…`, side by side with the others inside the
 * container, and gets its own exit code, stdout and stderr back: the container prints, per read, one header
 * line `CODE STDOUT_BYTES STDERR_BYTES` and then those bytes, so no output can be mistaken for a boundary.
 * Scripts and arguments are positional parameters of the container's script, never spliced into its text.
 */
import { Writable } from "stream";
import { failure } from "../core/errors";
import { commandFailed, docker, RunResult } from "./docker";

/** A batch starts once no read joined it for QUIET_MS, or MAX_WAIT_MS after its first read. */
const QUIET_MS = 30;
const MAX_WAIT_MS = 200;

export interface BatchedRead {
  readonly script: string;
  readonly args: readonly string[];
  readonly allowFailure: boolean;
}

interface Queued extends BatchedRead {
  readonly resolve: (result: RunResult) => void;
  readonly reject: (error: Error) => void;
}

/** `dockerArgs(script, args)`: the `docker run` arguments of a container running `sh -euc script edms-ops args…`. */
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
 * would differ in nothing but the script and its arguments (image, volumes, network, labels, limits).
 */
export function batchedRead(dockerArgs: DockerArgs, read: BatchedRead): Promise<RunResult> {
  const key = JSON.stringify(dockerArgs("", []));
  return new Promise((resolve, reject) => {
    const batch = batches.get(key) ?? { dockerArgs, queue: [], started: Date.now() };
    batches.set(key, batch);
    batch.queue.push({ ...read, resolve, reject });
    clearTimeout(batch.timer);
    const wait = Math.min(QUIET_MS, batch.started + MAX_WAIT_MS - Date.now());
    batch.timer = setTimeout(
      () => {
        batches.delete(key);
        void runBatch(batch.dockerArgs, batch.queue);
      },
      Math.max(0, wait),
    );
  });
}

/**
 * The container's script: read i runs in the background with its output in files, then each is printed
 * after its header, in order. Read i's script is `${p}` and its arguments the positional parameters after it.
 */
export function batchScript(reads: readonly BatchedRead[]): { script: string; args: string[] } {
  const args: string[] = [];
  // Without a scratch folder the container fails, and every read with it (its stderr says why).
  const lines = ['d="$(mktemp -d)"', "set +e"];
  reads.forEach((read, i) => {
    const at = (value: string) => `"\${${args.push(value)}}"`;
    const call = [at(read.script), "edms-ops", ...read.args.map(at)].join(" ");
    lines.push(`{ sh -euc ${call} >"$d/o${i}" 2>"$d/e${i}" </dev/null; echo $? >"$d/c${i}"; } &`);
  });
  lines.push(
    "wait",
    `i=0; while [ "$i" -lt ${reads.length} ]; do`,
    '  printf \'%s %s %s\\n\' "$(cat "$d/c$i")" "$(wc -c <"$d/o$i")" "$(wc -c <"$d/e$i")"',
    '  cat "$d/o$i" "$d/e$i"; i=$((i + 1))',
    "done",
    'rm -rf "$d"',
  );
  return { script: lines.join("\n"), args };
}

/** Splits the container's output into the reads' results; throws on output it did not print whole. */
export function parseBatchOutput(output: Buffer, count: number): RunResult[] {
  const results: RunResult[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    const end = output.indexOf(0x0a, at);
    const header =
      end < 0 ? null : /^(\d+) +(\d+) +(\d+)$/.exec(output.subarray(at, end).toString());
    if (!header) {
      throw cutShort(`ends or breaks at read ${i + 1} of ${count}`);
    }
    const [code, outBytes, errBytes] = header.slice(1).map(Number);
    const outEnd = end + 1 + outBytes;
    const errEnd = outEnd + errBytes;
    if (errEnd > output.length) {
      throw cutShort(`is cut short in read ${i + 1} of ${count}`);
    }
    results.push({
      code,
      stdout: output.subarray(end + 1, outEnd).toString("utf8"),
      stderr: output.subarray(outEnd, errEnd).toString("utf8"),
    });
    at = errEnd;
  }
  return results;
}

function cutShort(where: string) {
  return failure(
    `A helper container reading the backups volume printed an incomplete answer: its output ${where}.`,
    "Retry; if it happens again, see `docker events` and the engine's log for containers ended early.",
  );
}

async function runBatch(dockerArgs: DockerArgs, queue: readonly Queued[]): Promise<void> {
  if (queue.length === 1) {
    const [only] = queue;
    docker(dockerArgs(only.script, only.args), { allowFailure: only.allowFailure }).then(
      only.resolve,
      only.reject,
    );
    return;
  }
  const { script, args } = batchScript(queue);
  const chunks: Buffer[] = [];
  const stdout = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk);
      done();
    },
  });
  let results: RunResult[];
  try {
    const container = await docker(dockerArgs(script, args), { allowFailure: true, stdout });
    results =
      container.code === 0
        ? parseBatchOutput(Buffer.concat(chunks), queue.length)
        : // The container did not run (image, volume, engine): each read gets what its own would have.
          queue.map(() => container);
  } catch (err) {
    queue.forEach((q) => q.reject(err as Error));
    return;
  }
  queue.forEach((q, i) => {
    const result = results[i];
    if (result.code !== 0 && !q.allowFailure) {
      q.reject(commandFailed("docker", dockerArgs(q.script, q.args), result));
    } else {
      q.resolve(result);
    }
  });
}
