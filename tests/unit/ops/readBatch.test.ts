import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { BatchedRead, batchScript, parseBatchOutput } from "../../../ops/engine/readBatch";

/** What one read returns in a container of its own: `sh -euc SCRIPT edms-ops ARGS…`. */
function alone(read: BatchedRead, env: NodeJS.ProcessEnv) {
  const run = spawnSync("sh", ["-euc", read.script, "edms-ops", ...read.args], { env });
  return {
    code: run.status,
    stdout: run.stdout.toString("utf8"),
    stderr: run.stderr.toString("utf8"),
  };
}

/** The shells the helper images run: Debian's dash, and busybox's ash as in the official restic image. */
function shells(): { name: string; env: NodeJS.ProcessEnv; dir?: string }[] {
  const found = [{ name: "dash", env: process.env }];
  if (!fs.existsSync("/bin/busybox")) {
    return found;
  }
  // Every tool the batch script and the reads call is busybox's own applet, `sh` included.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "busybox-"));
  for (const tool of [
    "sh",
    "cat",
    "wc",
    "mktemp",
    "rm",
    "printf",
    "echo",
    "sleep",
    "tail",
    "ls",
    "sort",
  ]) {
    fs.symlinkSync("/bin/busybox", path.join(dir, tool));
  }
  return [...found, { name: "busybox", env: { ...process.env, PATH: dir }, dir }];
}

describe("reads batched into one helper container (status)", () => {
  const reads: BatchedRead[] = [
    // Output that looks like a header, without a trailing newline.
    { script: 'printf "0 5 5\\nfive!"', args: [], allowFailure: false },
    // Arguments that are not text to a shell: never expanded.
    {
      script: 'printf "%s|" "$@"; echo "$#"',
      args: ["a b", "$(touch /tmp/pwned)", "line\nbreak", "-e", ""],
      allowFailure: false,
    },
    // A failing read with stderr, and one that trips -u: each its own code.
    { script: 'echo out; echo "cannot read" >&2; exit 3', args: [], allowFailure: true },
    { script: 'echo "$unset_variable"', args: [], allowFailure: true },
    // Bytes that are not ASCII, and a slower read that finishes after the others.
    { script: "sleep 0.2; printf 'é\\344\\n'", args: [], allowFailure: false },
    // Enough reads and arguments for positional parameters past 9.
    ...Array.from({ length: 6 }, (_, i) => ({
      script: 'echo "$1:$2"',
      args: [`x${i}`, `y ${i}`],
      allowFailure: false,
    })),
  ];

  for (const shell of shells()) {
    it(`each read gets what its own container would have printed (${shell.name})`, () => {
      const { script, args } = batchScript(reads);
      const run = spawnSync("sh", ["-euc", script, "edms-ops", ...args], { env: shell.env });
      expect(run.status, run.stderr.toString()).to.equal(0);
      const results = parseBatchOutput(run.stdout, reads.length);
      expect(results).to.deep.equal(reads.map((read) => alone(read, shell.env)));
      expect(results[2]).to.include({ code: 3, stdout: "out\n", stderr: "cannot read\n" });
      expect(results[3].code).to.not.equal(0);
      expect(results[1].stdout).to.equal("a b|$(touch /tmp/pwned)|line\nbreak|-e||5\n");
      expect(results[10].stdout).to.equal("x5:y 5\n");
      if (shell.dir) {
        fs.rmSync(shell.dir, { recursive: true, force: true });
      }
    });
  }

  it("output cut short or broken is an error, never a result", () => {
    const { script, args } = batchScript(reads.slice(0, 2));
    const whole = spawnSync("sh", ["-euc", script, "edms-ops", ...args]).stdout;
    expect(parseBatchOutput(whole, 2)).to.have.length(2);
    expect(() => parseBatchOutput(whole.subarray(0, whole.length - 1), 2)).to.throw(/cut short/);
    expect(() => parseBatchOutput(whole, 3)).to.throw(/ends or breaks at read 3/);
    expect(() => parseBatchOutput(Buffer.from("zero 1 1\nab"), 1)).to.throw(/breaks at read 1/);
  });
});
