import { expect } from "chai";
import { validateSettings } from "../../../model/settings";
import * as dockerLib from "../../../ops/engine/docker";
import { dumpWithClient } from "../../../ops/backup/dump";
import { lockContainerArgs } from "../../../ops/engine/lock";
import { NO_SPACE } from "../../../ops/store/restic";

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const HASH = "ab".repeat(32);

describe("the backup's dump: a client container writing straight into the session's stage volume", function () {
  const settings = validateSettings("staging", { environment: "staging", version: "1.0.0" });
  const saved = dockerLib.docker;
  let calls: { args: string[]; input?: unknown }[] = [];
  let answers: Record<string, dockerLib.RunResult> = {};

  beforeEach(() => {
    calls = [];
    answers = {
      exec: { code: 0, stdout: "pa:ss\\word\n", stderr: "" },
      run: { code: 0, stdout: `${HASH}  /edms/database/db.dump\n119212670\n`, stderr: "" },
    };
    (dockerLib as Mutable<typeof dockerLib>).docker = (async (
      args: readonly string[],
      options?: dockerLib.RunOptions,
    ) => {
      calls.push({ args: [...args], input: options?.input });
      return answers[args[0]];
    }) as typeof dockerLib.docker;
  });
  afterEach(() => {
    (dockerLib as Mutable<typeof dockerLib>).docker = saved;
  });

  it("hands the superuser's password over on stdin only, escaped for pgpass; reaches the server on the data network", async function () {
    const dump = await dumpWithClient(settings, "00000003-0000001B-1");
    expect(dump).to.deep.equal({ file: "db.dump", bytes: 119212670, sha256: HASH });
    const [read, run] = calls;
    expect(read.args).to.deep.equal([
      "exec",
      settings.names.postgresContainer,
      "cat",
      "/run/secrets/postgres_password",
    ]);
    expect(run.input).to.equal("*:*:*:edms:pa\\:ss\\\\word\n");
    expect(run.args.join(" ")).not.to.contain("pa:ss");
    const flag = (name: string) => run.args.filter((_, i) => run.args[i - 1] === name);
    expect(flag("--network")).to.deep.equal([settings.names.dataNetwork]);
    // Only the stage: neither the backups volume (the repository's keys) nor the media.
    expect(flag("-v")).to.deep.equal([`${settings.namePrefix}_ops_stage:/edms/database`]);
    expect(flag("--label")).to.include("edms.role=ops-helper");
    expect(flag("--log-driver")).to.deep.equal(["none"]);
    expect(run.args).to.include("--read-only");
    expect(flag("-e"), "nothing in the container's environment").to.deep.equal([]);
    // The snapshot and the server are arguments of the script, never spliced into it.
    expect(run.args.slice(-3)).to.deep.equal([
      "edms-ops",
      "00000003-0000001B-1",
      settings.names.postgresContainer,
    ]);
    const script = run.args[run.args.length - 4];
    expect(script).to.match(/^umask 077\ncat > \/tmp\/pgpass\n/);
    expect(script).to.contain('--snapshot="$1" -f /edms/database/db.dump');
    expect(script).to.contain("PGAPPNAME=edms-ops-dump");
  });

  it("a dump that fails says why (a full disk is recognised as one); the password never appears", async function () {
    answers.run = {
      code: 1,
      stdout: "",
      stderr: "pg_dump: error: could not write to output file: No space left on device\n",
    };
    const err = await dumpWithClient(settings, "s").then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).to.match(/^database dump failed: pg_dump: error: could not write/);
    expect(NO_SPACE.test(err?.message ?? "")).to.equal(true);
    expect(err?.message).not.to.contain("pa:ss");
  });

  it("no checksum printed is a failed dump, never a manifest with an empty hash", async function () {
    answers.run = { code: 0, stdout: "\n", stderr: "" };
    const err = await dumpWithClient(settings, "s").then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).to.match(/printed no checksum/);
  });

  it("an unreadable password file is refused naming it, before any client starts", async function () {
    answers.exec = {
      code: 1,
      stdout: "",
      stderr: "cat: /run/secrets/postgres_password: No such file\n",
    };
    const err = await dumpWithClient(settings, "s").then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).to.match(/superuser's password file \/run\/secrets\/postgres_password/);
    expect(calls.map((c) => c.args[0])).to.deep.equal(["exec"]);
  });

  it("the lock container mounts the stage as a labelled named volume, so a killed run's is found", function () {
    const argv = lockContainerArgs(settings, "backup", true);
    expect(argv).to.include(
      `type=volume,src=${settings.namePrefix}_ops_stage,dst=/edms/database` +
        `,volume-label=edms.stack=staging,volume-label=edms.role=ops-stage`,
    );
    expect(argv).not.to.include("/edms/database");
  });
});
