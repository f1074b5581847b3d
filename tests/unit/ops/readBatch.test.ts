import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  BatchedRead,
  batchedRead,
  batchScript,
  DockerArgs,
  helperBatch,
  parseBatchOutput,
} from "../../../ops/engine/readBatch";
import { testShells } from "../../harness/shells";

/** What one read returns in a container of its own: `sh -euc SCRIPT $0 ARGS…`. */
function alone(read: BatchedRead, env: NodeJS.ProcessEnv) {
  const run = spawnSync("sh", ["-euc", read.script, read.zero, ...read.args], { env });
  return {
    code: run.status,
    stdout: run.stdout.toString("utf8"),
    stderr: run.stderr.toString("utf8"),
  };
}

/** Every tool the batch script and the reads call, busybox's own applet in its shell. */
const shells = (root: string) =>
  testShells(root, ["cat", "wc", "head", "mktemp", "rm", "printf", "echo", "sleep", "tail", "ls"]);

const reads: BatchedRead[] = [
  // Output that looks like a header, without a trailing newline.
  { script: 'printf "0 5 5\\nfive!"', args: [], allowFailure: false, zero: "edms-ops" },
  // Arguments that are not text to a shell: never expanded.
  {
    script: 'printf "%s|" "$0" "$@"; echo "$#"',
    args: ["a b", "$(touch /tmp/pwned)", "line\nbreak", "-e", ""],
    allowFailure: false,
    zero: "edms-ops",
  },
  // A failing read with stderr, and one that trips -u (its shell names itself by $0): each its own code.
  { script: 'echo out; echo "cannot read" >&2; exit 3', args: [], allowFailure: true, zero: "sh" },
  { script: 'echo "$unset_variable"', args: [], allowFailure: true, zero: "sh" },
  // Bytes that are not ASCII, and a slower read that finishes after the others.
  { script: "sleep 0.2; printf 'é\\344\\n'", args: [], allowFailure: false, zero: "edms-ops" },
  // Enough reads and arguments for positional parameters past 9.
  ...Array.from({ length: 6 }, (_, i) => ({
    script: 'echo "$1:$2"',
    args: [`x${i}`, `y ${i}`],
    allowFailure: false,
    zero: "edms-ops",
  })),
];

describe("reads batched into one helper container (status)", () => {
  let root: string;
  before(() => (root = fs.mkdtempSync(path.join(os.tmpdir(), "read-batch-"))));
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it("each read gets what its own container would have printed, under dash and busybox", () => {
    for (const shell of shells(root)) {
      const { script, args } = batchScript(reads);
      const run = spawnSync("sh", ["-euc", script, "edms-ops", ...args], { env: shell.env });
      expect(run.status, run.stderr.toString()).to.equal(0);
      const results = parseBatchOutput(run.stdout, reads.length)!;
      expect(results, shell.name).to.deep.equal(reads.map((read) => alone(read, shell.env)));
      expect(results[2]).to.include({ code: 3, stdout: "out\n", stderr: "cannot read\n" });
      expect(results[3].code).to.not.equal(0);
      expect(results[3].stderr).to.match(/^sh: /);
      expect(results[1].stdout).to.equal("edms-ops|a b|$(touch /tmp/pwned)|line\nbreak|-e||5\n");
      expect(results[10].stdout).to.equal("x5:y 5\n");
    }
  });

  it("a read that leaves a process writing gets what it printed by then; the others are whole", () => {
    const leaving: BatchedRead[] = [
      {
        script: "(i=0; while [ $i -lt 20000 ]; do echo x; i=$((i + 1)); done) & echo early",
        args: [],
        allowFailure: false,
        zero: "edms-ops",
      },
      { script: "sleep 0.1; echo second", args: [], allowFailure: false, zero: "edms-ops" },
    ];
    const { script, args } = batchScript(leaving);
    const run = spawnSync("sh", ["-euc", script, "edms-ops", ...args]);
    const results = parseBatchOutput(run.stdout, 2);
    expect(results, run.stdout.toString().slice(0, 200)).to.not.equal(null);
    // The writer and `echo early` race: any order, whole lines only.
    const lines = results![0].stdout.split("\n");
    expect(lines.filter((l) => l === "early")).to.have.length(1);
    expect(lines.filter((l) => !["early", "x"].includes(l))).to.deep.equal([lines.at(-1)]);
    expect(results![1].stdout).to.equal("second\n");
  });

  it("output cut short, broken or with more than was announced is not an answer", () => {
    const { script, args } = batchScript(reads.slice(0, 2));
    const whole = spawnSync("sh", ["-euc", script, "edms-ops", ...args]).stdout;
    expect(parseBatchOutput(whole, 2)).to.have.length(2);
    expect(parseBatchOutput(whole.subarray(0, whole.length - 1), 2)).to.equal(null);
    expect(parseBatchOutput(whole, 3)).to.equal(null);
    expect(parseBatchOutput(Buffer.concat([whole, Buffer.from("x")]), 2)).to.equal(null);
    expect(parseBatchOutput(Buffer.from(" 1 1\nab"), 1)).to.equal(null);
  });

  it("as many reads share a container as the helpers' process and memory limits allow", () => {
    expect(helperBatch({ memoryMb: 4096, pids: 512 })).to.equal(16);
    expect(helperBatch({ memoryMb: 64, pids: 16 })).to.equal(0);
    expect(helperBatch({ memoryMb: 4096, pids: 64 })).to.equal(2);
    expect(helperBatch({ memoryMb: 300, pids: 512 })).to.equal(1);
  });

  describe("through a docker that runs the container's command here", () => {
    const saved = process.env.PATH;
    let log: string;
    before(() => {
      const bin = path.join(root, "bin");
      fs.mkdirSync(bin);
      log = path.join(root, "containers.log");
      // One line per container; a batch fails to start when FAKE_DOCKER_FAIL is set.
      fs.writeFileSync(
        path.join(bin, "docker"),
        `#!/bin/sh
while [ "$1" != "-euc" ]; do shift; done
case "$2" in *'mktemp -d'*) echo batch >>"${log}"; [ -z "$FAKE_DOCKER_FAIL" ] || { echo "cannot start" >&2; exit 125; } ;; *) echo alone >>"${log}" ;; esac
exec sh "$@"
`,
        { mode: 0o755 },
      );
      process.env.PATH = `${bin}:${saved}`;
    });
    after(() => {
      process.env.PATH = saved;
      delete process.env.FAKE_DOCKER_FAIL;
    });
    beforeEach(() => fs.writeFileSync(log, ""));
    const containers = () => fs.readFileSync(log, "utf8").split("\n").filter(Boolean);
    const argsOf =
      (volume: string): DockerArgs =>
      (script, args) => ["run", "--rm", "-v", volume, "image", "-euc", script, "edms-ops", ...args];

    it("reads asked together share one; each resolves or rejects as alone; another volume's read does not join", async () => {
      const asked = reads.map((read) =>
        batchedRead(argsOf("backups"), { ...read, zero: "edms-ops" }, 16).then(
          (result) => result,
          (err: Error) => err,
        ),
      );
      const strict = batchedRead(
        argsOf("backups"),
        { script: "echo no >&2; exit 4", args: [], allowFailure: false, zero: "edms-ops" },
        16,
      ).catch((err: Error) => err);
      const other = batchedRead(
        argsOf("other"),
        { script: "echo other", args: [], allowFailure: false, zero: "edms-ops" },
        16,
      );
      const results = await Promise.all(asked);
      expect(results.map((r) => ("code" in r ? r.code : r.message))).to.deep.equal(
        reads.map((read) => alone({ ...read, zero: "edms-ops" }, process.env).code),
      );
      expect(((await strict) as Error).message).to.match(/failed \(exit 4\):\nno/);
      expect((await other).stdout).to.equal("other\n");
      expect(containers().sort()).to.deep.equal(["alone", "batch"]);
    });

    it("no more than the limit allow share one", async () => {
      const five = Array.from({ length: 5 }, (_, i) =>
        batchedRead(argsOf("backups"), { ...reads[5 + i], zero: "edms-ops" }, 2),
      );
      expect((await Promise.all(five)).map((r) => r.stdout)).to.deep.equal(
        [0, 1, 2, 3, 4].map((i) => `x${i}:y ${i}\n`),
      );
      expect(containers().sort()).to.deep.equal(["alone", "batch", "batch"]);
    });

    it("a batch whose container fails is run again one container per read", async () => {
      process.env.FAKE_DOCKER_FAIL = "1";
      const three = [5, 6, 7].map((i) =>
        batchedRead(argsOf("backups"), { ...reads[i], zero: "edms-ops" }, 16),
      );
      expect((await Promise.all(three)).map((r) => r.stdout)).to.deep.equal([
        "x0:y 0\n",
        "x1:y 1\n",
        "x2:y 2\n",
      ]);
      expect(containers()).to.deep.equal(["batch", "alone", "alone", "alone"]);
      delete process.env.FAKE_DOCKER_FAIL;
    });
  });
});
