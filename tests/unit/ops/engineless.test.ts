import { expect } from "chai";
import { docker } from "../../../ops/engine/docker";
import { mountedHere } from "../../../ops/engine/engineless";
import { OPS_SESSION_OPTIONS, pgCommand } from "../../../ops/database/postgres";
import { containerServer } from "../../../ops/database/server";
import { OpsError } from "../../../ops/core/errors";

/** Runs `fn` as in the scheduler container (EDMS_ENGINE=none), restoring the environment after. */
async function engineless<T>(fn: () => T | Promise<T>): Promise<T> {
  const before = process.env.EDMS_ENGINE;
  process.env.EDMS_ENGINE = "none";
  try {
    return await fn();
  } finally {
    if (before === undefined) {
      delete process.env.EDMS_ENGINE;
    } else {
      process.env.EDMS_ENGINE = before;
    }
  }
}

describe("edms-ops without the engine (the scheduler)", function () {
  const here = {
    edms_backups: { path: "/backups" },
    edms_media_files: { path: "/edms/media", readOnly: true },
  };

  it("runs a helper's script here only when every volume it mounts is mounted here, writable where it writes", function () {
    expect(
      mountedHere([{ volume: "edms_backups", path: "/backups", readOnly: true }], here),
    ).to.equal(true);
    expect(mountedHere([{ volume: "edms_backups", path: "/backups" }], here)).to.equal(true);
    expect(
      mountedHere([{ volume: "edms_media_files", path: "/edms/media", readOnly: true }], here),
    ).to.equal(true);
    // Writing the media, or a volume at another path, or one not mounted here at all: the engine's job.
    expect(mountedHere([{ volume: "edms_media_files", path: "/edms/media" }], here)).to.equal(
      false,
    );
    expect(
      mountedHere([{ volume: "edms_media_files", path: "/media", readOnly: true }], here),
    ).to.equal(false);
    expect(
      mountedHere(
        [
          { volume: "edms_backups", path: "/backups" },
          { volume: "edms_drill_scratch", path: "/scratch" },
        ],
        here,
      ),
    ).to.equal(false);
  });

  it("refuses any docker command with an error that says why, and starts nothing", async function () {
    const refused = await engineless(() =>
      docker(["run", "--rm", "-v", "/:/host", "busybox"]).then(
        () => null,
        (err: unknown) => err,
      ),
    );
    expect(refused).to.be.instanceOf(OpsError);
    expect((refused as OpsError).message).to.match(
      /`docker run --rm -v \/:\/host …` needs the Docker engine, and this container \(the scheduler\) has no engine socket by design/,
    );
  });

  it("reaches the stack's server over the data network as the backup role, with its pgpass file; edms-ops execs the superuser's; both ignore the database's timeouts and read-only default", async function () {
    expect(OPS_SESSION_OPTIONS).to.equal(
      "-c statement_timeout=0 -c lock_timeout=0 -c idle_in_transaction_session_timeout=0 -c default_transaction_read_only=off",
    );
    const env = { PGAPPNAME: "edms-backup-dump" };
    const here = await engineless(() =>
      pgCommand(containerServer("edms-postgres"), "pg_dump", ["-d", "edms"], env),
    );
    expect(here).to.deep.equal({
      command: "pg_dump",
      args: ["-h", "edms-postgres", "-U", "edms_backup", "-d", "edms"],
      env: {
        PGPASSFILE: "/run/secrets/backup_db.pgpass",
        PGOPTIONS: OPS_SESSION_OPTIONS,
        PGAPPNAME: "edms-backup-dump",
      },
    });
    const operator = pgCommand(containerServer("edms-postgres"), "pg_dump", ["-d", "edms"], env);
    expect(operator).to.deep.equal({
      command: "docker",
      args: [
        "exec",
        "-i",
        "-e",
        `PGOPTIONS=${OPS_SESSION_OPTIONS}`,
        "-e",
        "PGAPPNAME=edms-backup-dump",
        "edms-postgres",
        "pg_dump",
        "-U",
        "edms",
        "-d",
        "edms",
      ],
      env: {},
    });
  });
});
