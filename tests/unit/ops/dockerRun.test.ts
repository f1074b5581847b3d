import { expect } from "chai";
import { spawnSync } from "child_process";
import { shellQuote, shellWord } from "../../../model/shell";
import { validateSettings } from "../../../model/settings";
import { dockerRunArgs, opsLabels } from "../../../ops/lib/dockerRun";

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
      "-e",
      "A=1",
      "x",
    ]);
    expect(dockerRunArgs({ image: "x", detach: true })).to.deep.equal(["run", "-d", "x"]);
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
