import { expect } from "chai";
import { validateSettings } from "../../../model/settings";
import * as dockerLib from "../../../ops/engine/docker";
import { backupToolbox, toolbox } from "../../../ops/engine/toolbox";
import { lockContainerArgs } from "../../../ops/engine/lock";
import { runDjango } from "../../../ops/database/django";
import { withScratchDatabase } from "../../../ops/backup/scratchServer";
import { releaseContainerArgs } from "../../../ops/backup/drill/release";
import { Scratch } from "../../../ops/backup/drill/scratch";

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The value of each `--flag value` / `--flag=value` of an argv, up to the image. */
function flags(argv: readonly string[], flag: string): string[] {
  const found: string[] = [];
  argv.forEach((word, i) => {
    if (word === flag) {
      found.push(argv[i + 1]);
    } else if (word.startsWith(`${flag}=`)) {
      found.push(word.slice(flag.length + 1));
    }
  });
  return found;
}

describe("container hardening (issue 20): every container edms-ops starts", function () {
  const settings = validateSettings("staging", {
    environment: "staging",
    version: "1.0.0",
    limits: { helpers: { memoryMb: 1500, pids: 300 } },
  });
  const started: string[][] = [];
  const saved = dockerLib.docker;
  const savedEnv = { ...process.env };

  before(() => {
    (dockerLib as Mutable<typeof dockerLib>).docker = (async (args: readonly string[]) => {
      if (args[0] === "run" || args[0] === "create") {
        started.push([...args]);
      }
      return { code: 0, stdout: "init process complete\n", stderr: "" };
    }) as typeof dockerLib.docker;
    Object.assign(process.env, {
      EDMS_POSTGRES_PASSWORD: "p",
      EDMS_DJANGO_SECRET_KEY: "k",
      EDMS_REDIS_PASSWORD: "r",
    });
  });
  after(() => {
    (dockerLib as Mutable<typeof dockerLib>).docker = saved;
    process.env = savedEnv;
  });

  it("toolbox, restic toolbox, lock, scratch server, one-off Django and the drill's release: confined and limited", async function () {
    await toolbox(settings, [], "true");
    await backupToolbox(settings, "true");
    started.push(lockContainerArgs(settings, "backup", true));
    await withScratchDatabase(settings, async () => undefined);
    await runDjango(settings, {
      image: "edms-sample/backend:1.0.0",
      command: ["python3", "manage.py", "migrate"],
    });
    const drill = new Scratch(settings);
    started.push(releaseContainerArgs(settings, drill, "db", "edms-sample/backend:2.0.0", "2.0.0"));
    expect(started).to.have.length(6);
    for (const argv of started) {
      const image = argv.findIndex((w) => /^(postgres|restic|edms-sample|redis)/.test(w));
      const before = argv.slice(0, image > 0 ? image : argv.length);
      const name = before.join(" ");
      expect(flags(before, "--security-opt"), name).to.deep.equal(["no-new-privileges"]);
      expect(flags(before, "--cap-drop"), name).to.deep.equal(["ALL"]);
      expect(flags(before, "--cap-add"), name).not.to.include.members([
        "SYS_ADMIN",
        "NET_RAW",
        "MKNOD",
      ]);
      expect(flags(before, "--memory"), name).to.deep.equal(["1500m"]);
      expect(flags(before, "--memory-swap"), name).to.deep.equal(["1500m"]);
      expect(flags(before, "--pids-limit"), name).to.deep.equal(["300"]);
      const driver = flags(before, "--log-driver");
      expect(driver, name).to.have.length(1);
      if (driver[0] !== "none") {
        expect(flags(before, "--log-opt"), name).to.deep.equal(["max-size=10m", "max-file=3"]);
      }
      expect(
        flags(before, "--tmpfs").every((t) => /nosuid,nodev/.test(t)),
        name,
      ).to.equal(true);
    }
    const [plain, restic, lock, scratch, django, release] = started;
    // Root helpers: read-only, and never the right to become another user.
    for (const argv of [plain, restic, lock, scratch]) {
      expect(argv, argv.join(" ")).to.include("--read-only");
    }
    for (const argv of [plain, restic, lock]) {
      expect(flags(argv, "--cap-add")).not.to.include.members(["SETUID", "SETGID"]);
    }
    // The app's own user needs nothing; its secrets are copied into its root before it starts.
    for (const argv of [django, release]) {
      expect(flags(argv, "--cap-add")).to.deep.equal([]);
      expect(argv).not.to.include("--read-only");
    }
    // The drill's release reaches nothing but its scratch network, and logs nothing of the backup's data.
    expect(flags(release, "--network")).to.deep.equal([drill.network]);
    expect(flags(release, "--log-driver")).to.deep.equal(["none"]);
  });

  it("the scratch template's builder and a scratch server started from it: confined, by the image's id, the template read-only", async function () {
    const id = `sha256:${"ab".repeat(32)}`;
    const volume = "edms-scratch-template-abababababab";
    const runs: string[][] = [];
    (dockerLib as Mutable<typeof dockerLib>).docker = (async (args: readonly string[]) => {
      if (args[0] === "run") {
        runs.push([...args]);
      }
      if (args[0] === "image") {
        return {
          code: 0,
          stdout: JSON.stringify([id, ["docker-entrypoint.sh"], ["postgres"]]),
          stderr: "",
        };
      }
      // No template yet: neither the mark of a published one nor the volume.
      if (args[0] === "volume" && (args[1] === "inspect" || args[1] === "rm")) {
        return { code: 1, stdout: "", stderr: "Error: No such volume" };
      }
      return { code: 0, stdout: "", stderr: "" };
    }) as typeof dockerLib.docker;
    await withScratchDatabase(settings, async () => undefined);
    const [builder, scratch] = runs;
    expect(runs).to.have.length(2);
    for (const argv of runs) {
      expect(flags(argv, "--security-opt")).to.deep.equal(["no-new-privileges"]);
      expect(flags(argv, "--cap-drop")).to.deep.equal(["ALL"]);
      expect(argv).to.include("--read-only");
      expect(flags(argv, "--network")).to.deep.equal(["none"]);
      expect(flags(argv, "--memory")).to.deep.equal(["1500m"]);
      expect(argv, "runs by the image's id").to.include(id);
    }
    // KILL, beyond the postgres entrypoint's own, for the builder only: it stops the server it started.
    expect(flags(builder, "--cap-add")).to.include("KILL");
    expect(flags(scratch, "--cap-add")).not.to.include("KILL");
    expect(flags(builder, "--label")).to.deep.equal(["edms.role=scratch-template"]);
    expect(flags(builder, "--mount").join(" ")).to.match(
      new RegExp(`src=${volume},dst=/template(,|$)`),
    );
    expect(flags(scratch, "-v")).to.include(`${volume}:/template:ro`);
  });
});
