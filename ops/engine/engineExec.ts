/**
 * `docker exec [-i] [-e K=V] [-u USER] [-w DIR] CONTAINER CMD…` through the local engine's API instead of a
 * docker CLI process: create the exec, start it on a hijacked connection (stdin written then half-closed,
 * stdout and stderr demultiplexed from the engine's 8-byte frame headers), then read its exit code. edms-ops
 * runs ~300 short execs (psql queries, scripts in its session container) per deploy-and-restore cycle; each
 * CLI start costs ~60 ms of CPU and more of waiting on a busy host.
 *
 * Served only where nothing but the transport differs from the CLI: the engine the CLI would use is this
 * socket (engineApi.ts `localSocket`), and the command's options are ones docker.ts `socketServes` (an input
 * string or buffer, collected output, nothing for the CLI itself). Until the exec has
 * started, any answer the socket does not give sends the command to the CLI instead; once it has started it
 * is never run twice.
 */
import * as http from "http";
import type { Socket } from "net";
import type { Answer } from "./engineApi";
import { daemonError, get, localSocket, NAME, request } from "./engineApi";

interface ExecSpec {
  readonly container: string;
  readonly body: {
    AttachStdin: boolean;
    AttachStdout: true;
    AttachStderr: true;
    Tty: false;
    Env: string[];
    Cmd: string[];
    User?: string;
    WorkingDir?: string;
  };
}

const VALUE_FLAGS: Record<string, "env" | "user" | "workdir"> = {
  "-e": "env",
  "--env": "env",
  "-u": "user",
  "--user": "user",
  "-w": "workdir",
  "--workdir": "workdir",
};

/** The exec `args` asks for, when every flag is one the API takes as the CLI does; else undefined. */
export function execSpec(args: readonly string[]): ExecSpec | undefined {
  if (args[0] !== "exec") {
    return undefined;
  }
  let interactive = false;
  const env: string[] = [];
  let user: string | undefined;
  let workdir: string | undefined;
  let i = 1;
  for (; i < args.length && args[i].startsWith("-"); i += 1) {
    const kind = VALUE_FLAGS[args[i]];
    const value = args[i + 1];
    if (args[i] === "-i" || args[i] === "--interactive") {
      interactive = true;
    } else if (kind === "env" && /^[^=]+=/.test(value ?? "")) {
      env.push(value);
      i += 1;
    } else if ((kind === "user" || kind === "workdir") && value && !value.startsWith("-")) {
      [user, workdir] = kind === "user" ? [value, workdir] : [user, value];
      i += 1;
    } else {
      return undefined;
    }
  }
  const [container, ...cmd] = args.slice(i);
  if (!container || !NAME.test(container) || !cmd.length) {
    return undefined;
  }
  return {
    container,
    body: {
      AttachStdin: interactive,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      Env: env,
      Cmd: cmd,
      ...(user !== undefined ? { User: user } : {}),
      ...(workdir !== undefined ? { WorkingDir: workdir } : {}),
    },
  };
}

/**
 * A POST that the engine answers by switching the connection to a raw stream (an exec's start, a container's
 * attach). undefined: the engine refused it (an error status, or no answer), so nothing ran; "unexpected": it
 * answered without switching, and what was asked may have run.
 */
export function hijack(
  socket: string,
  path: string,
  /** A JSON body; undefined: none (a container's attach, which the engine hijacks without reading one). */
  body: unknown,
): Promise<Socket | "unexpected" | undefined> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve) => {
    const request = http.request({
      socketPath: socket,
      agent: false,
      path,
      method: "POST",
      headers: {
        Host: "docker",
        ...(payload === undefined
          ? {}
          : { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) }),
        Connection: "Upgrade",
        Upgrade: "tcp",
      },
    });
    request.on("upgrade", (_response, stream: Socket, head: Buffer) => {
      if (head.length) {
        stream.unshift(head);
      }
      resolve(stream);
    });
    request.on("response", (response) => {
      response.resume();
      resolve((response.statusCode ?? 500) >= 400 ? undefined : "unexpected");
    });
    request.on("error", () => resolve(undefined));
    request.end(payload);
  });
}

/**
 * Reads the engine's multiplexed stream (header: stream 1 stdout / 2 stderr, three zero bytes, a big-endian
 * length) into the two outputs, handing complete lines of either to `onLine` in the order they came.
 */
export function demultiplex(
  stream: Socket,
  onLine?: (line: string) => void,
): Promise<{ stdout: string; stderr: string; error?: Error }> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let pending: Buffer = Buffer.alloc(0);
  let partial = "";
  return new Promise((resolve) => {
    stream.on("data", (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      while (pending.length >= 8 && pending.length >= 8 + pending.readUInt32BE(4)) {
        const size = pending.readUInt32BE(4);
        const payload = pending.subarray(8, 8 + size);
        (pending[0] === 2 ? err : out).push(payload);
        if (onLine) {
          const parts = (partial + payload.toString("utf8")).split("\n");
          partial = parts.pop() ?? "";
          parts.filter((line) => line.trim()).forEach(onLine);
        }
        pending = pending.subarray(8 + size);
      }
    });
    let error: Error | undefined;
    stream.on("error", (e: Error) => (error = e));
    stream.on("close", () =>
      resolve({
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        error,
      }),
    );
  });
}

/** The exec's exit code once the engine has it (the stream may close a moment before it does). */
async function exitCode(socket: string, id: string): Promise<number | undefined> {
  for (let attempt = 0; attempt < 200; attempt += 1) {
    const reply = await get(socket, `/exec/${id}/json`);
    if (reply?.status !== 200) {
      return undefined;
    }
    const state = JSON.parse(reply.body) as { Running: boolean; ExitCode: number | null };
    if (!state.Running && state.ExitCode !== null) {
      return state.ExitCode;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return undefined;
}

/**
 * Runs `args` (`docker exec …`) through the local socket, with `input` on its stdin when it has `-i`;
 * undefined: run the CLI (nothing was started). docker.ts decides which options leave the CLI nothing to do.
 */
export async function execLocally(
  args: readonly string[],
  input?: string | Buffer,
  onLine?: (line: string) => void,
): Promise<Answer | undefined> {
  const socket = localSocket();
  const spec = execSpec(args);
  if (!socket || !spec) {
    return undefined;
  }
  const created = await request(socket, "POST", `/containers/${spec.container}/exec`, spec.body);
  if (created?.status === 404 || created?.status === 409) {
    return { code: 1, stdout: "", stderr: daemonError(created.body) };
  }
  if (created?.status !== 201) {
    return undefined;
  }
  const { Id: id } = JSON.parse(created.body) as { Id: string };
  const stream = await hijack(socket, `/exec/${id}/start`, { Detach: false, Tty: false });
  if (!stream) {
    return undefined;
  }
  if (stream === "unexpected") {
    return {
      code: 1,
      stdout: "",
      stderr: "edms-ops: the engine started the exec without attaching to it\n",
    };
  }
  const output = demultiplex(stream, onLine);
  if (spec.body.AttachStdin && input !== undefined && input.length) {
    stream.end(input);
  } else {
    stream.end();
  }
  const { stdout, stderr, error } = await output;
  const code = await exitCode(socket, id);
  if (code === undefined) {
    const reason = error ? `: ${error.message}` : "";
    return { code: 1, stdout, stderr: `${stderr}edms-ops: the engine lost the exec${reason}\n` };
  }
  return { code, stdout, stderr };
}
