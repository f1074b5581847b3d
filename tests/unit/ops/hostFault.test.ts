import { expect } from "chai";
import { Checks, DAMAGED } from "../../../ops/backup/drill/checks";
import { failure } from "../../../ops/core/errors";
import { HostFault, hostFailure, hostFaultLine, LOST_SERVER } from "../../../ops/core/hostFault";
import { latestOutcomes } from "../../../ops/backup/drill/records";
import { DrillRecord, drillVerdict, failedOnHostOnly } from "../../../ops/store/records";
import { drillSummary } from "../../../ops/reports/evidence";

/**
 * A test-restore stopped by the host (a full disk, memory, the server going away) is not the backup's fault:
 * the texts that say so are told apart from those that speak of the data, and a drill records which it was.
 */
describe("host faults: told apart from a damaged backup", function () {
  // What pg_restore, PostgreSQL, restic, cp and the kernel print (PostgreSQL 15, restic 0.18, C locale).
  const host = [
    'pg_restore: error: could not execute query: ERROR:  could not extend file "base/16384/16402": No space left on device\nHINT:  Check free disk space.',
    'pg_restore: error: COPY failed for table "documents": ERROR:  could not write to file "base/pgsql_tmp/pgsql_tmp61.0": No space left on device',
    '2026-12-07 21:58:08.648 UTC [95] PANIC:  could not write to file "pg_wal/xlogtemp.95": No space left on device',
    "cp: error writing '/scratch-pgdata/data/./pg_wal/000000010000000000000001': No space left on device",
    "pg_restore: error: out of memory",
    'ERROR:  could not resize shared memory segment "/PostgreSQL.1" to 8388608 bytes: No space left on device',
    "ignoring error for /scans/a.pdf: open /drill/scans/a.pdf: no space left on device\nFatal: There were 1 errors",
    "write /edms/database/db.dump: disk quota exceeded",
    "open /drill/x: read-only file system",
  ];
  // What the backup itself causes, or what only the server's own log can tell: these stay the backup's.
  const data = [
    'pg_restore: error: could not execute query: ERROR:  relation "documents" already exists',
    "pg_restore: error: could not read from input file: end of file",
    "pg_restore: error: input file does not appear to be a valid archive",
    "Fatal: load pack 3f2a…: ciphertext verification failed",
    "read /backups/restic/data/3f/3f2a: input/output error",
    "ERROR:  permission denied for schema public",
    // A server gone away (the data may have crashed it), refused logins: not the host's by their text.
    "pg_restore: error: error returned by PQputCopyData: server closed the connection unexpectedly",
    "FATAL:  terminating connection because of crash of another server process",
    'pg_restore: error: connection to server at "db" (10.0.0.5), port 5432 failed: FATAL:  password authentication failed for user "edms"',
    "FATAL:  sorry, too many clients already",
    // Echoes of data and statements: a stored text that says "out of memory" proves nothing.
    'pg_restore: error: COPY failed for table "task_results": ERROR:  invalid input syntax for type json\nCONTEXT:  COPY task_results, line 7, column result: "MemoryError: out of memory"',
    "DETAIL:  Key (note)=(No space left on device) already exists.",
    "Command was: INSERT INTO logs VALUES ('disk quota exceeded');",
    "",
  ];

  it("names the line that says the host failed, and nothing for the data's own failures", function () {
    for (const text of host) {
      expect(hostFaultLine(text), text).to.be.a("string").and.not.equal("");
    }
    expect(LOST_SERVER.test(data[6]) && LOST_SERVER.test(data[7])).to.equal(true);
    expect(hostFaultLine(host[0])).to.equal(
      'pg_restore: error: could not execute query: ERROR:  could not extend file "base/16384/16402": No space left on device',
    );
    for (const text of data) {
      expect(hostFaultLine(text), text).to.equal(null);
    }
  });

  it("a drill's check that the host stopped is recorded as such; one that found damage, or any other failure, is not", async function () {
    const checks = new Checks();
    await checks.run("database restore", () =>
      Promise.reject(
        hostFailure(
          "stopped on the host: No space left on device",
          "Free space, then run it again.",
        ),
      ),
    );
    await checks.run("row counts", () =>
      Promise.reject(failure("documents: 3 rows, 4 recorded", DAMAGED)),
    );
    await checks.run("manifest", () => Promise.resolve("ok"));
    expect(checks.list.map((c) => [c.name, c.ok, c.host])).to.deep.equal([
      ["database restore", false, true],
      ["row counts", false, undefined],
      ["manifest", true, undefined],
    ]);
    expect(hostFailure("m", "Free it.")).to.be.instanceOf(HostFault);
  });

  it("a drill failed on the host only when every check that ran and failed failed there", function () {
    const check = (name: string, ok: boolean, detail: string, host?: boolean) => ({
      name,
      ok,
      detail,
      seconds: 1,
      ...(host === undefined ? {} : { host }),
    });
    const onHost = check("database restore", false, "stopped on the host", true);
    const skipped = check("row counts", false, "not run: database did not restore");
    const damaged = check("media checksums", false, "3 files differ");
    expect(failedOnHostOnly([onHost, skipped, check("manifest", true, "ok")])).to.equal(true);
    expect(failedOnHostOnly([onHost, skipped, damaged])).to.equal(false);
    expect(failedOnHostOnly([skipped])).to.equal(false);
    expect(failedOnHostOnly([check("manifest", true, "ok")])).to.equal(false);
  });

  it("a drill the host stopped does not count against its backup: the drill before it stands", function () {
    const drill = (backup: string, ok: boolean, host?: boolean) =>
      ({
        backup,
        ok,
        checks: [
          {
            name: "database restore",
            ok,
            detail: ok ? "ok" : "no room",
            seconds: 1,
            ...(host ? { host } : {}),
          },
        ],
      }) as unknown as DrillRecord;
    const outcomes = latestOutcomes([
      drill("b1", true),
      drill("b1", false, true),
      drill("b2", false),
      drill("b2", false, true),
      drill("b3", false, true),
      null,
    ]);
    expect([...outcomes]).to.deep.equal([
      ["b1", true],
      ["b2", false],
    ]);
  });

  it("evidence and status say a drill the host stopped could not finish, and which check it stopped", function () {
    const record = {
      id: "d1",
      backup: "b1",
      release: "2.0.0",
      trigger: "manual",
      ranBy: "op",
      startedAt: "2026-12-08T00:00:00Z",
      finishedAt: "2026-12-08T00:01:00Z",
      ok: false,
      checks: [
        { name: "manifest", ok: true, detail: "ok", seconds: 0 },
        { name: "database restore", ok: false, detail: "no room", seconds: 3, host: true },
      ],
    } as unknown as DrillRecord;
    const summary = drillSummary(record);
    expect(summary).to.deep.include({ ok: false, onHost: true });
    expect(summary?.checks.map((c) => [c.name, c.host])).to.deep.equal([
      ["manifest", false],
      ["database restore", true],
    ]);
    expect(drillVerdict(summary!)).to.match(/^could not finish \(the host failed/);
    const damaged = {
      ...record,
      checks: [
        ...record.checks,
        { name: "media", ok: false, detail: "3 files differ", seconds: 1 },
      ],
    };
    expect(drillSummary(damaged as unknown as DrillRecord)?.onHost).to.equal(false);
    expect(drillVerdict({ ok: false, onHost: false })).to.equal("FAILED");
    expect(drillVerdict({ ok: true, onHost: false })).to.equal("passed");
  });
});
