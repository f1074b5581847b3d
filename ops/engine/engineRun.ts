/**
 * `docker run --network none …` of edms-ops' helpers through the local engine's API, with the network
 * disabled (`NetworkDisabled`, which the CLI has no flag for). Docker's "none" network still builds a sandbox
 * for each container: the engine re-executes itself twice (libnetwork's netns-create and its setkey prestart
 * hook), ~0.28 s of CPU and ~0.2 s of waiting per start, measured on this project's engine (Docker 20.10). A
 * helper with its network disabled gets the same namespace with only loopback, which runc brings up; nothing
 * of it reaches a network either way.
 *
 * Served only for argv that dockerRun.ts builds, where every flag maps onto the API's create body exactly as
 * the CLI maps it (engineCreate.ts), only when the CLI would use this same socket (engineApi.ts
 * `localSocket`) and only for the options docker.ts `socketServes` (input as a string or buffer, collected
 * output): the run is then done here as `docker run` does it (attach, the input written and stdin closed, a
 * wait, the start, the exit code from the wait), in this process, so a killed edms-ops closes the container's stdin as
 * the CLI's death did. Any create the socket does not answer with 201 (a missing image, which the CLI pulls;
 * a name in use, which the CLI reports itself) goes to the CLI unchanged. The stack lock's holder, a run that
 * outlives its call, stays on the CLI (lock.ts).
 */
import * as http from "http";
import type { Answer } from "./engineApi";
import { daemonError, localSocket, request } from "./engineApi";
import { createSpec, CreateSpec } from "./engineCreate";
import { demultiplex, hijack } from "./engineExec";

/** The exit code `docker run` gives a container the engine could not start (cli/command/container/run.go). */
function startFailureCode(message: string): number {
  if (/executable file not found|no such file or directory/.test(message)) {
    return 127;
  }
  return /permission denied|is a directory/.test(message) ? 126 : 125;
}

/**
 * Starts the container; null once it has started, else what `docker run` answers when the engine could not
 * start it. No time limit, as the CLI sets none: a start that timed out may still have started it.
 */
async function start(socket: string, id: string): Promise<Answer | null> {
  const started = await request(socket, "POST", `/containers/${id}/start`, undefined, 0);
  if (started?.status === 204 || started?.status === 304) {
    return null;
  }
  const message = started ? daemonError(started.body) : "the engine did not answer the start\n";
  return {
    code: startFailureCode(message),
    stdout: "",
    stderr: `docker: ${message}\nRun 'docker run --help' for more information\n`,
  };
}

interface Wait {
  /** The engine has registered the wait (its answer's header came): a start may follow. */
  readonly registered: Promise<boolean>;
  /**
   * The container's exit code once it has exited (and, with `--rm`, been removed); undefined: lost. A problem:
   * the engine's error with it (a removal that failed).
   */
  readonly result: Promise<{ code?: number; problem?: string }>;
  readonly cancel: () => void;
}

/**
 * `POST /containers/ID/wait`, asked before the start as the CLI asks it (waitExitOrRemoved): a container
 * removed on exit (`--rm`) is waited for until it is gone, so that its name and volumes are free when the run
 * returns, as after `docker run --rm`.
 */
function waitFor(socket: string, id: string, removed: boolean): Wait {
  let registered!: (ok: boolean) => void;
  let done!: (result: { code?: number; problem?: string }) => void;
  const wait: Omit<Wait, "cancel"> = {
    registered: new Promise((resolve) => (registered = resolve)),
    result: new Promise((resolve) => (done = resolve)),
  };
  const condition = removed ? "removed" : "next-exit";
  const sent = http.request(
    {
      socketPath: socket,
      agent: false,
      method: "POST",
      path: `/containers/${id}/wait?condition=${condition}`,
      headers: { Host: "docker" },
    },
    (response) => {
      registered(response.statusCode === 200);
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => {
        try {
          const answer = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
            StatusCode?: number;
            Error?: { Message?: string } | null;
          };
          const problem = answer.Error ? (answer.Error.Message ?? "unknown") : undefined;
          done(response.statusCode === 200 ? { code: answer.StatusCode, problem } : {});
        } catch {
          done({});
        }
      });
      response.on("error", () => done({}));
    },
  );
  sent.on("error", () => {
    registered(false);
    done({});
  });
  sent.end();
  return { ...wait, cancel: () => sent.destroy() };
}

/** Removes a container this run created and never started (best effort). */
function removeCreated(socket: string, id: string): Promise<unknown> {
  return request(socket, "DELETE", `/containers/${id}?force=1&v=1`);
}

/**
 * An attached run: its streams attached and its end waited for before it starts (nothing it prints is
 * missed), `input` written to its stdin then closed (with `-i`), its outputs read to the end, its exit code
 * from the wait. Until the start, any answer the socket does not give removes what was created and sends the
 * run to the CLI; once started it is never run twice.
 */
async function runAttached(
  socket: string,
  id: string,
  spec: CreateSpec,
  input?: string | Buffer,
  onLine?: (line: string) => void,
): Promise<Answer | undefined> {
  const streams = "stream=1&stdout=1&stderr=1" + (spec.stdin ? "&stdin=1" : "");
  // No body: the engine hijacks the connection without reading one, and bytes after the headers would be
  // the container's stdin.
  const stream = await hijack(socket, `/containers/${id}/attach?${streams}`, undefined);
  if (!stream || stream === "unexpected") {
    await removeCreated(socket, id);
    return undefined;
  }
  // Read (and its errors taken) from now on, as the CLI reads; the input goes in before the start, as the CLI
  // copies it, so a started container never misses it (an edms-ops killed after the start included).
  const output = demultiplex(stream, onLine);
  if (spec.stdin && input !== undefined && input.length) {
    stream.end(input);
  } else {
    stream.end();
  }
  const wait = waitFor(socket, id, spec.autoRemove);
  if (!(await wait.registered)) {
    wait.cancel();
    stream.destroy();
    await output;
    await removeCreated(socket, id);
    return undefined;
  }
  const failed = await start(socket, id);
  if (failed) {
    stream.destroy();
    wait.cancel();
    await output;
    return failed;
  }
  const { stdout, stderr, error } = await output;
  const { code, problem } = await wait.result;
  if (code === undefined || problem) {
    // As the CLI answers a wait that failed (cli/command/container/utils.go): 125 and the engine's reason.
    const reason = problem ?? `the engine lost the container${error ? `: ${error.message}` : ""}`;
    return { code: 125, stdout, stderr: `${stderr}Error waiting for container: ${reason}\n` };
  }
  return { code, stdout, stderr };
}

/**
 * Runs `args` (`docker run …` of a network-less helper) through the local socket: attached, with `input` on
 * its stdin when it has `-i`; detached, started and its id answered as `docker run -d` prints it. undefined:
 * run the CLI (nothing was created, or what was created is removed again).
 */
export async function runLocally(
  args: readonly string[],
  input?: string | Buffer,
  onLine?: (line: string) => void,
): Promise<Answer | undefined> {
  const socket = localSocket();
  const spec = createSpec(args);
  if (!socket || !spec) {
    return undefined;
  }
  const query = spec.name ? `?name=${spec.name}` : "";
  // No time limit, as the CLI sets none: a create that timed out may have created it, and the CLI would then
  // create a second one.
  const created = await request(socket, "POST", `/containers/create${query}`, spec.body, 0);
  if (created?.status !== 201) {
    return undefined;
  }
  const { Id: id } = JSON.parse(created.body) as { Id: string };
  if (!spec.detach) {
    return runAttached(socket, id, spec, input, onLine);
  }
  return (await start(socket, id)) ?? { code: 0, stdout: `${id}\n`, stderr: "" };
}
