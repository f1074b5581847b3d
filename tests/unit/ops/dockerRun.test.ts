import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PassThrough } from "stream";
import { shellQuote, shellWord } from "../../../model/shell";
import { validateSettings } from "../../../model/settings";
import { pipeCommands, run } from "../../../ops/engine/docker";
import { dockerRunArgs, opsLabels } from "../../../ops/engine/dockerRun";

/** What every helper container gets unless told otherwise (model/hardening.ts, edms:limits.helpers). */
const HELPER_CONFINEMENT = [
  ...["--security-opt", "no-new-privileges", "--cap-drop", "ALL"],
  ...["--cap-add", "CHOWN", "--cap-add", "DAC_OVERRIDE", "--cap-add", "DAC_READ_SEARCH"],
  ...["--cap-add", "FOWNER", "--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev"],
  ...["--memory=4096m", "--memory-swap=4096m", "--pids-limit=512"],
];
const ROTATED_LOGS = [
  ...["--log-driver", "json-file", "--log-opt", "max-size=10m", "--log-opt", "max-file=3"],
];

describe("docker run argv and shell quoting", function () {
  const staging = validateSettings("staging", { environment: "staging", version: "1.0.0" });

  it("builds the toolbox's argv: flags before the image, the script after it", function () {
    expect(
      dockerRunArgs({
        image: "postgres:16",
        args: ["-euc", "tar -C /media -cf - ."],
        remove: true,
        stdin: true,
        logging: false,
        network: "none",
        user: "0",
        entrypoint: "sh",
        labels: opsLabels(staging),
        mounts: [
          { volume: "edms_media_files", path: "/media", readOnly: true },
          { volume: "edms_backups", path: "/backups" },
        ],
        scratchPaths: ["/edms/database"],
      }),
    ).to.deep.equal([
      "run",
      "-i",
      "--rm",
      "--log-driver",
      "none",
      ...HELPER_CONFINEMENT,
      "--network",
      "none",
      "--user",
      "0",
      "--entrypoint",
      "sh",
      "--label",
      "edms.stack=staging",
      "--label",
      "edms.role=ops",
      "-v",
      "edms_media_files:/media:ro",
      "-v",
      "edms_backups:/backups",
      "-v",
      "/edms/database",
      "postgres:16",
      "-euc",
      "tar -C /media -cf - .",
    ]);
  });

  it("`create` with env and a detached server", function () {
    expect(dockerRunArgs({ image: "x", env: ["A=1"], name: "n" }, "create")).to.deep.equal([
      "create",
      "--name",
      "n",
      ...ROTATED_LOGS,
      ...HELPER_CONFINEMENT,
      "-e",
      "A=1",
      "x",
    ]);
    expect(dockerRunArgs({ image: "x", detach: true })).to.deep.equal([
      "run",
      "-d",
      ...ROTATED_LOGS,
      ...HELPER_CONFINEMENT,
      "x",
    ]);
  });

  it("pipeCommands: a consumer done before the producer exits leaves it alone; a failing one ends it", async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-pipe-"));
    try {
      // The producer, like `docker exec … tar -cf -`, is still exiting after the archive's last block.
      const [sent, received] = await pipeCommands(
        (stdout, signal) =>
          run("sh", ["-c", "tar -C /etc -cf - hostname; sleep 1"], {
            stdout,
            allowFailure: true,
            signal,
          }),
        (input) => run("tar", ["-x", "-C", dir], { input, allowFailure: true }),
      );
      expect([sent.code, received.code]).to.deep.equal([0, 0]);
      expect(fs.existsSync(path.join(dir, "hostname"))).to.equal(true);
      // `yes` never ends by itself: that pipeCommands returns at all (within the test's timeout) is the proof.
      const [endless, failed] = await pipeCommands(
        (stdout, signal) => run("sh", ["-c", "exec yes"], { stdout, allowFailure: true, signal }),
        (input) =>
          run("sh", ["-c", "head -c 10 >/dev/null; exit 3"], { input, allowFailure: true }),
      );
      expect(failed.code).to.equal(3);
      expect(endless.code).not.to.equal(0);
      // The same through a stream of the consumer's own on the way (a hash, as a test-restore's): it fills once
      // the consumer is gone, and must not hold the producer (a drill on a disk that filled hung here).
      const [held, failedThrough] = await pipeCommands(
        (stdout, signal) => run("sh", ["-c", "exec yes"], { stdout, allowFailure: true, signal }),
        (input) =>
          run("sh", ["-c", "head -c 10 >/dev/null; exit 3"], {
            input: input.pipe(new PassThrough()),
            allowFailure: true,
          }),
      );
      expect([held.code === 0, failedThrough.code]).to.deep.equal([false, 3]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("quotes any value so that sh reads it back unchanged", function () {
    for (const value of [
      "plain",
      "",
      "it's",
      'a\'b $c `d` \\e "f"',
      "new\nline",
      "*?[]{}~#&;|<>()",
    ]) {
      const echoed = spawnSync("sh", ["-c", `printf %s ${shellQuote(value)}`], {
        encoding: "utf8",
      });
      expect(echoed.stdout, JSON.stringify(value)).to.equal(value);
      const word = spawnSync("sh", ["-c", `printf %s ${shellWord(value)}`], { encoding: "utf8" });
      expect(word.stdout, JSON.stringify(value)).to.equal(value);
    }
    expect(shellWord("--stack")).to.equal("--stack");
    expect(shellWord("a b")).to.equal("'a b'");
  });
});
