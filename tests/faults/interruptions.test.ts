/**
 * restore killed (SIGKILL of edms-ops) at four points of its progress, reset-app and rollback at three points
 * spread over each command's own measured run time, and restore with postgres stopped half way (and once
 * inside the swap's transaction), on a database like production's: a grant to a role, a second schema with a
 * table, a view and a function, 20,000 large objects. After each fault: `status` answers and names what is
 * unfinished; no complete backup is lost; the database equals the state before or the state after, never a
 * mix; the next attempt succeeds and gives the state after. A restore killed in its media stage keeps its
 * first undo through the re-run (scheduled backups skipped meanwhile), and that undo gives back the state
 * before the first attempt.
 */
import { expect } from "chai";
import { docker } from "../../ops/engine/docker";
import type { ScheduleRun } from "../../ops/schedule/records";
import { opsInBackground, opsKilledAfter, opsKilledWhen, TestStack } from "../harness/stack";

// Spread over the measured run, front-weighted: repeated runs are faster than the first (caches), and a point
// after the end kills nothing. Three, over the range four covered (0.08–0.74; the suite's slowest file).
const FRACTIONS = [0.1, 0.4, 0.7];
/**
 * Where a restore is killed: a delay after one of its progress lines, so that each point lands in its stage
 * whatever the machine's load (a fraction of a measured run, as reset-app's and rollback's below, lands after
 * the end when the load falls between the measure and the kill), with the state each must leave.
 */
const RESTORE_POINTS: readonly { when: RegExp; after: number; leaves: RegExp }[] = [
  // Its pg_restore beside the live database.
  {
    when: /restoring database into \S+ beside the live one/,
    after: 1000,
    leaves: /: killed, database before$/,
  },
  // Its undo's dump, web and worker stopped.
  {
    when: / so nothing writes during the restore/,
    after: 300,
    leaves: /: killed, database before$/,
  },
  // Right after the swap, the media not yet restored.
  {
    when: /restored database swapped in/,
    after: 0,
    leaves: /: killed, database after, status names it unfinished$/,
  },
  // All restored and the marker gone, web and worker not yet started.
  { when: /\] starting \S+/, after: 0, leaves: /: killed, database after$/ },
];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const REAL_WORLD_SQL = `
CREATE ROLE "reporting ü" NOLOGIN;
GRANT SELECT ON documents_document TO "reporting ü";
CREATE SCHEMA extra;
CREATE TABLE extra."ledger line" (id serial PRIMARY KEY, note text);
INSERT INTO extra."ledger line" (note) SELECT 'line ' || g FROM generate_series(1, 500) g;
CREATE VIEW extra.ledger_view AS SELECT count(*) AS n FROM extra."ledger line";
CREATE FUNCTION extra.double(i int) RETURNS int LANGUAGE sql AS 'SELECT i * 2';
SELECT count(lo_from_bytea(0, convert_to('blob ' || g, 'UTF8'))) FROM generate_series(1, 20000) g;
`;

/** A later state: more documents, a role gone (as on a new host), objects of a later release, fewer LOs. */
const LATER_SQL =
  'DROP OWNED BY "reporting ü"; DROP ROLE "reporting ü"; CREATE TABLE extra.newer (a int); ' +
  "CREATE VIEW public.newer_view AS SELECT 1 AS one; SELECT count(lo_unlink(oid)) FROM (SELECT oid FROM pg_largeobject_metadata LIMIT 100) l;";

// A realistic keep (staging's default): the undo backups of the killed runs push older ones out, so retention
// runs under every fault and must never take the backup an unfinished restore names as its undo.
const KEEP = 5;

describe("faults: restore, reset-app and rollback interrupted", function () {
  const stack = new TestStack("intr", "staging", {
    "edms:version": "1.0.0",
    "edms:backup": { beforeDeploy: true, keep: KEEP },
  });
  const report: string[] = [];
  let target = "";
  /** The backup of the later state (the undo of the first full restore). */
  let laterId = "";
  const kills: Record<string, number> = {};
  let atTarget: Awaited<ReturnType<typeof state>>;

  /** Runs a command to completion and times it; `code` 3 for a rollback left for the Pulumi CLI here. */
  async function timed(args: string[], code = 0): Promise<number> {
    const started = Date.now();
    const result = await stack.ops(args);
    expect(result.code, `${args.join(" ")}: ${result.stderr}`).to.equal(code);
    return Date.now() - started;
  }

  /**
   * The next measure of a whole run: the re-run after a kill that left the state before (nothing unfinished)
   * does all of the command's work again. Beside another test file the machine's load changes by up to ~2x
   * between the first measure and the last point; points taken from a stale measure would all land after the
   * end (nothing killed) or all at its start.
   */
  async function rerun(args: string[], killed: string, measure: number, code = 0): Promise<number> {
    const started = Date.now();
    const again = await stack.ops(args);
    expect(again.code, `${args.join(" ")}: ${again.stderr}`).to.equal(code);
    // A rollback killed before its reversal committed keeps its plan (status names it unfinished), but its
    // run again does all of the work.
    const whole =
      killed.includes("database before") &&
      (args[0] === "rollback" || !killed.includes("unfinished"));
    return whole ? Date.now() - started : measure;
  }

  async function state() {
    return { db: await stack.dbFingerprint(), media: await stack.mediaFingerprint() };
  }

  /** The newest undo backup: after a restore, the state that restore replaced. */
  async function newestUndo(): Promise<string> {
    return (await stack.backupIds()).filter((id) => id.endsWith("-pre-restore")).pop() as string;
  }

  /**
   * No complete backup was lost but by retention: at most one per new backup, and never one of the newest
   * (the caller checks that an unfinished restore's undo is kept too).
   */
  function onlyRetention(before: readonly string[], now: readonly string[], what: string): void {
    const added = now.filter((id) => !before.includes(id));
    const lost = before.filter((id) => !now.includes(id));
    expect(lost.length, `${what}: more backups gone than new ones came`).to.be.at.most(
      added.length,
    );
    // Retention keeps the newest `keep` of all (rollback targets and pins on top): before's newest
    // keep - added cannot have gone.
    const mustStay = before.slice(Math.max(0, before.length - (KEEP - added.length)));
    expect(
      lost.filter((id) => mustStay.includes(id)),
      `${what}: one of the newest backups is gone`,
    ).to.deep.equal([]);
  }

  /**
   * Kills `args` at `point` (after its ms, or its delay after a progress line), then checks the invariants
   * against the states before/after; returns what status said.
   */
  async function killAndCheck(
    what: string,
    args: string[],
    point: number | (typeof RESTORE_POINTS)[number],
    before: Awaited<ReturnType<typeof state>>,
    after: Awaited<ReturnType<typeof state>>,
  ): Promise<string> {
    const backups = await stack.backupIds();
    const command = [...args, "--stack", stack.name];
    const { signal } =
      typeof point === "number"
        ? await opsKilledAfter(command, point)
        : await opsKilledWhen(command, point.when, point.after);
    const at = typeof point === "number" ? `${point}ms` : `${point.after}ms after ${point.when}`;
    expect(await stack.lockLeft(), "the lock container outlived the killed edms-ops").to.equal("");
    const status = await stack.ops(["status", "--json"]);
    expect(status.code, status.stderr).to.equal(0);
    const parsed = JSON.parse(status.stdout);
    const now = await state();
    const db = JSON.stringify(now.db);
    const where =
      db === JSON.stringify(before.db)
        ? "before"
        : db === JSON.stringify(after.db)
          ? "after"
          : "MIXED";
    expect(where, `${what} killed at ${at}: the database is a mix`).not.to.equal("MIXED");
    const unfinished = parsed.interruptedRestore ?? parsed.unfinishedRollback ?? null;
    if (!unfinished && where === "after") {
      // Nothing announced as unfinished: the media must be whole too.
      expect(now.media, `${what} killed at ${at}: media half done with no marker`).to.equal(
        after.media,
      );
    }
    if (parsed.interruptedRestore) {
      const health = await stack.ops(["health"]);
      expect(health.code, "health passes during an incomplete restore").to.equal(1);
      expect(health.stdout).to.match(
        /FAIL restore: restore of \S+ incomplete: run `edms-ops restore/,
      );
    }
    const afterwards = await stack.backupIds();
    onlyRetention(backups, afterwards, `${what} killed at ${at}`);
    if (parsed.interruptedRestore?.undo) {
      expect(afterwards, "the unfinished restore's undo is kept").to.include(
        parsed.interruptedRestore.undo,
      );
    }
    if (signal === "SIGKILL") {
      kills[what] = (kills[what] ?? 0) + 1;
    }
    const line = `${what} @${at}: ${signal === "SIGKILL" ? "killed" : "had finished"}, database ${where}${unfinished ? ", status names it unfinished" : ""}`;
    report.push(line);
    return line;
  }

  /** A backup of the current state becomes the restores' `target`, that state `atTarget`. */
  async function backUpTarget(): Promise<void> {
    const backup = await stack.ops(["backup", "--reason", "target"]);
    expect(backup.code, backup.stderr).to.equal(0);
    target = backup.stdout.trim();
    atTarget = await state();
  }

  /** Moves on to a later state (LATER_SQL, documents under `seed`) and returns it. */
  async function toLaterState(seed: string) {
    await stack.seed(seed, 3, 64 * 1024);
    await stack.psql(LATER_SQL);
    return state();
  }

  before(async function () {
    await stack.freshDeploy();
    await stack.seed("v1", 5, 64 * 1024);
    expect((await stack.up("2.0.0")).error).to.equal(undefined);
    await stack.seed("v2", 5, 64 * 1024);
    await stack.psql(REAL_WORLD_SQL);
  });
  after(async function () {
    console.log(`      fault points:\n        ${report.join("\n        ")}`);
    await stack.destroy();
  });

  it("restore: killed at 4 points, then finished; grants, schemas, views, functions and 20,000 large objects come back exactly", async function () {
    await backUpTarget();
    await toLaterState("later");
    await timed(["restore", target]);
    expect(await state()).to.deep.equal(atTarget);
    expect(
      await stack.psql(
        "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'reporting ü'; SELECT has_table_privilege('reporting ü', 'documents_document', 'SELECT');",
      ),
    ).to.equal("f\nt");
    expect(
      await stack.psql(
        "SELECT to_regclass('extra.newer') IS NULL AND to_regclass('public.newer_view') IS NULL;",
      ),
    ).to.equal("t");
    expect(
      await stack.psql("SELECT extra.double(21), (SELECT n FROM extra.ledger_view);"),
    ).to.equal("42|500");

    // The kill points below take eight more restores. The 20,000 came back exactly above; the points run on 500,
    // sparing each restore most of its undo's pg_dump (4.8 s) and of its pg_restore (5.2 s), traced with 20,000.
    // (In statements of 2,000: one transaction's lock per large object would exhaust the lock table.)
    await stack.psql(
      "SELECT count(lo_unlink(oid)) FROM (SELECT oid FROM pg_largeobject_metadata ORDER BY oid OFFSET 500 LIMIT 2000) l;\n".repeat(
        10,
      ),
    );
    expect(await stack.psql("SELECT count(*) FROM pg_largeobject_metadata;")).to.equal("500");
    await backUpTarget();
    const later = await toLaterState("later2");
    const laterBackup = await stack.ops(["backup", "--reason", "later"]);
    expect(laterBackup.code, laterBackup.stderr).to.equal(0);

    // Alternate directions so that each kill starts from a known state: to `target` and back to `later`.
    // Each target is then the newest undo, the backup of the state the previous restore replaced: with keep
    // 5 the first ones are gone by the end.
    const idOf = { target, later: laterBackup.stdout.trim() };
    let [from, to, toName] = [later, atTarget, "target" as keyof typeof idOf];
    for (const point of RESTORE_POINTS) {
      const toId = idOf[toName];
      const line = await killAndCheck("restore", ["restore", toId], point, from, to);
      expect(line, "the state a restore killed there leaves").to.match(point.leaves);
      // A run that finished before its kill, or was killed only after its whole restore (the database
      // `after` and nothing announced unfinished), took the undo of `from`; the re-run then backs up `to` as
      // its own undo, so the backup of `from` is the newest undo before the re-run, not after it.
      const outcome = line.slice(line.lastIndexOf(": ") + 2);
      const completed =
        outcome.includes("had finished") ||
        (outcome.includes("database after") && !outcome.includes("unfinished"));
      const finishedUndo = completed ? await newestUndo() : null;
      await timed(["restore", toId]);
      expect(await state()).to.deep.equal(to);
      const fromName = toName === "later" ? "target" : "later";
      idOf[fromName] = finishedUndo ?? (await newestUndo());
      [from, to, toName] = [to, from, fromName];
    }
    [target, laterId] = [idOf.target, idOf.later];
  });

  it("restore with postgres stopped half way: a clear error, the database before or after, the next attempt succeeds", async function () {
    // From the later state, towards the target.
    expect((await stack.ops(["restore", laterId])).code).to.equal(0);
    const before = await state();
    expect(before.db).not.to.deep.equal(atTarget.db);
    const run = stack.ops(["restore", target]);
    await sleep(4000);
    await docker(["stop", `${stack.prefix}-postgres`]);
    const failed = await run;
    await stack.startPostgres();
    report.push(
      `restore with postgres stopped at 4s: exit ${failed.code}, ${failed.stderr.trim().split("\n").pop()}`,
    );
    expect(failed.code, "restore reported success with postgres stopped").to.equal(1);
    expect(failed.stderr).to.match(/^edms-ops: /m);
    expect(failed.stderr).not.to.match(/unexpected error/);
    const db = JSON.stringify(await stack.dbFingerprint());
    expect([JSON.stringify(before.db), JSON.stringify(atTarget.db)]).to.include(db);
    const status = await stack.ops(["status", "--json"]);
    expect(status.code, status.stderr).to.equal(0);
    const again = await stack.ops(["restore", target]);
    expect(again.code, again.stderr).to.equal(0);
    expect(await state()).to.deep.equal(atTarget);
  });

  it("restore with postgres stopped during the swap itself: incomplete, the marker and undo stay, the re-run finishes", async function () {
    expect((await stack.ops(["restore", laterId])).code).to.equal(0);
    const before = await state();
    const postgres = `${stack.prefix}-postgres`;
    const onMaintenance = (sql: string) =>
      docker(["exec", postgres, "psql", "-U", "edms", "-d", "postgres", "-XAtqc", sql]);
    // A session on the maintenance database holds a lock on the live database that connections and dumps
    // pass but its rename waits for: the swap starts and hangs there until postgres stops under it.
    await docker([
      "exec",
      "-d",
      postgres,
      "psql",
      "-U",
      "edms",
      "-d",
      "postgres",
      "-Xc",
      "BEGIN; COMMENT ON DATABASE edms IS 'held'; SELECT pg_sleep(600); COMMIT;",
    ]);
    const run = stack.ops(["restore", target]);
    let waiting = "";
    for (let i = 0; i < 240 && waiting !== "1"; i += 1) {
      await sleep(500);
      waiting = (
        await onMaintenance(
          "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%RENAME TO%';",
        )
      ).stdout.trim();
    }
    expect(waiting, "the swap waiting on the held lock").to.equal("1");
    await docker(["stop", postgres]);
    const failed = await run;
    await stack.startPostgres();
    report.push(`restore with postgres stopped in its swap: exit ${failed.code}`);
    expect(failed.code, failed.stderr).to.equal(3);
    expect(failed.stderr).to.match(/INCOMPLETE/);
    expect(failed.stderr).to.contain("is not known");
    expect(failed.stderr).to.contain(`edms-ops restore ${target} --stack ${stack.name}\` again`);
    const db = JSON.stringify(await stack.dbFingerprint());
    expect([JSON.stringify(before.db), JSON.stringify(atTarget.db)]).to.include(db);
    const status = JSON.parse((await stack.ops(["status", "--json"])).stdout);
    expect(status.interruptedRestore).to.deep.include({ id: target });
    const again = await stack.ops(["restore", target]);
    expect(again.code, again.stderr).to.equal(0);
    expect(await state()).to.deep.equal(atTarget);
  });

  it("restore killed in its media stage: the re-run keeps the first undo, scheduled backups are skipped meanwhile, and that undo gives back the state before", async function () {
    const backup = await stack.ops(["backup", "--reason", "resume-target"]);
    expect(backup.code, backup.stderr).to.equal(0);
    const resumeTarget = backup.stdout.trim();
    const atResumeTarget = await state();
    await stack.seed("resume", 3, 64 * 1024);
    const beforeFirst = await state();
    const backups = await stack.backupIds();

    const killed = await opsKilledWhen(
      ["restore", resumeTarget, "--stack", stack.name],
      /restoring media/,
    );
    expect(killed.signal, killed.stderr).to.equal("SIGKILL");
    expect(await stack.lockLeft(), "the lock container outlived the killed edms-ops").to.equal("");
    expect((await state()).db, "killed in the media stage: the database is swapped").to.deep.equal(
      atResumeTarget.db,
    );
    const undo = (await stack.backupIds()).filter((id) => !backups.includes(id));
    expect(undo, "the first attempt's undo backup").to.have.length(1);
    expect(undo[0]).to.match(/-pre-restore$/);
    const status = JSON.parse((await stack.ops(["status", "--json"])).stdout);
    expect(status.interruptedRestore).to.deep.include({ id: resumeTarget, undo: undo[0] });

    // Scheduled backups while the marker is there: skipped, with the reason, and no backup taken.
    const saved = stack.config["edms:backup"];
    stack.set("edms:backup", { ...(saved as object), schedule: "*/5 * * * * *" });
    const scheduler = opsInBackground(["scheduler", "--stack", stack.name]);
    let skipped: ScheduleRun | undefined;
    let health: Awaited<ReturnType<typeof stack.ops>>;
    try {
      const runs = await stack.waitForScheduler(
        "a scheduled backup recorded while the restore is unfinished",
        60,
        () => stack.scheduleRuns(),
        (r) => r.length > 0,
      );
      skipped = runs[runs.length - 1];
      // While it runs: a stop during its next attempt records that one as interrupted.
      health = await stack.ops(["health"]);
    } finally {
      const log = await scheduler.stop();
      stack.set("edms:backup", saved);
      report.push(`scheduler during an unfinished restore: ${log.trim().split("\n").pop()}`);
    }
    expect(skipped).to.deep.include({ outcome: "skipped", ok: false, backup: null });
    expect(skipped?.error).to.contain(`restore of ${resumeTarget} incomplete`);
    expect(skipped?.error).to.contain(`edms-ops restore ${undo[0]}`);
    expect(health.code).to.equal(1);
    expect(health.stdout).to.contain(
      `\`edms-ops restore ${undo[0]} --stack ${stack.name}\` to undo it`,
    );
    expect(health.stdout).to.match(/was skipped: not taken while a restore is unfinished/);
    const withUndo = await stack.backupIds();
    onlyRetention(backups, withUndo, "the scheduler during an unfinished restore");
    // Nor by hand (or a deploy's pre-deploy backup), nor a migration of the half-restored data, nor an app
    // reset, which would start web/worker on it afterwards.
    for (const args of [
      ["backup"],
      ["migrate"],
      ["reset-app", "documents", "--confirm", stack.name],
    ]) {
      const refused = await stack.ops(args);
      expect(refused.code, `${args[0]}: ${refused.stderr}`).to.equal(2);
      expect(refused.stderr).to.contain(`the restore of ${resumeTarget} incomplete`);
      expect(refused.stderr).to.contain(`edms-ops restore ${undo[0]} --stack ${stack.name}`);
    }
    // (Two label filters would have to match both: one query per role.)
    for (const role of ["web", "worker"]) {
      const running = await docker([
        "ps",
        "-q",
        "--filter",
        `label=edms.stack=${stack.name}`,
        "--filter",
        `label=edms.role=${role}`,
      ]);
      expect(running.stdout.trim(), `${role} stays stopped on half-restored data`).to.equal("");
    }
    expect(await stack.backupIds(), "nothing backed up by hand").to.deep.equal(withUndo);
    expect(
      withUndo.filter((id) => !backups.includes(id)),
      "no scheduled backup",
    ).to.deep.equal(undo);

    // The re-run finishes with the first undo: no backup of the half-restored state.
    const again = await stack.ops(["restore", resumeTarget]);
    expect(again.code, again.stderr).to.equal(0);
    expect(again.stdout).to.contain(
      `To undo, run: edms-ops restore ${undo[0]} --stack ${stack.name}`,
    );
    expect(await stack.backupIds()).to.deep.equal(withUndo);
    expect(await state()).to.deep.equal(atResumeTarget);

    const back = await stack.ops(["restore", undo[0]]);
    expect(back.code, back.stderr).to.equal(0);
    expect(await state(), "the named undo is the state before the first attempt").to.deep.equal(
      beforeFirst,
    );
  });

  it("reset-app documents: killed at 3 points, the database is always all before or all after; the next run finishes and starts web/worker", async function () {
    let full = await timed(["reset-app", "documents", "--confirm", stack.name]);
    expect((await state()).db.documents_document).to.equal("0:-");
    for (const fraction of FRACTIONS) {
      // New documents each round; "after" is the same database with the documents table emptied.
      await stack.seed(`ra${Math.round(fraction * 100)}`, 2, 1024);
      const before = await state();
      const after = { ...before, db: { ...before.db, documents_document: "0:-" } };
      const args = ["reset-app", "documents", "--confirm", stack.name];
      const line = await killAndCheck(
        "reset-app",
        args,
        Math.round(full * fraction),
        before,
        after,
      );
      full = await rerun(args, line, full);
      expect((await state()).db.documents_document).to.equal("0:-");
      // Behind the proxy the web container is named per release (`<prefix>-web-<version>`).
      const running = (await stack.containers()).join("\n");
      expect(running).to.contain(`${stack.prefix}-web`);
      expect(running).to.contain(`${stack.prefix}-worker`);
    }
    expect(kills["reset-app"] ?? 0, "reset-apps actually killed mid-way").to.be.at.least(2);
  });

  it("rollback 2.0.0 → 1.0.0 (data steps): killed at 3 points, the schema is 2.0.0's or 1.0.0's, never between; the next run finishes", async function () {
    const at2 = await state();
    // No Pulumi CLI in this suite: the data steps finish and the redeploy is left (exit 3, incomplete).
    let full = await timed(["rollback", "--previous"], 3);
    const at1 = await state();
    expect(at1.db.columns).not.to.contain("slug");
    for (const fraction of FRACTIONS) {
      // Back to 2.0.0's schema with 2.0.0's own migrate, and its record, as a redeploy would: that
      // supersedes the rollback's kept plan.
      expect((await stack.ops(["migrate"])).code).to.equal(0);
      const recorded = await stack.ops(["record-deployment"]);
      expect(recorded.stdout).to.contain("the unfinished rollback 2.0.0 → 1.0.0 is superseded");
      expect((await state()).db.migrations).to.equal(at2.db.migrations);
      const args = ["rollback", "--previous"];
      const line = await killAndCheck("rollback", args, Math.round(full * fraction), at2, at1);
      full = await rerun(args, line, full, 3);
      expect((await state()).db.columns).to.equal(at1.db.columns);
    }
    expect(kills.rollback ?? 0, "rollbacks actually killed mid-way").to.be.at.least(2);
  });

  it("reset-app and rollback with postgres stopped half way: a clear error, the database before or after, the next attempt succeeds", async function () {
    // From 2.0.0's schema with documents (the rollback test left 1.0.0's, web/worker stopped for the redeploy),
    // as a redeploy of 2.0.0 leaves it: its record supersedes the rollback's plan, so this one plans afresh.
    expect((await stack.ops(["migrate"])).code).to.equal(0);
    expect((await stack.ops(["record-deployment"])).stdout).to.contain("is superseded");
    await docker(["start", `${stack.prefix}-web`, `${stack.prefix}-worker`]);
    await stack.seed("pgstop", 2, 1024);
    // Stopped while each is in its database work (measured above: reset-app ~10 s, rollback ~4 s).
    for (const [args, at] of [
      [["reset-app", "documents", "--confirm", stack.name], 3000],
      [["rollback", "--previous"], 2000],
    ] as const) {
      const before = await state();
      const run = stack.ops([...args]);
      await sleep(at);
      await docker(["stop", `${stack.prefix}-postgres`]);
      const failed = await run;
      await stack.startPostgres();
      report.push(`${args[0]} with postgres stopped at ${at / 1000}s: exit ${failed.code}`);
      expect(failed.code, `${args[0]} reported success with postgres stopped`).to.equal(1);
      expect(failed.stderr).to.match(/^edms-ops: /m);
      expect(failed.stderr).not.to.match(/unexpected error/);
      expect(
        (await state()).db,
        `${args[0]}: the database changed although it failed`,
      ).to.deep.equal(before.db);
      expect((await stack.ops(["status", "--json"])).code).to.equal(0);
      const again = await stack.ops([...args]);
      // A rollback's data steps finish; its redeploy is left for the Pulumi CLI (none here): exit 3.
      expect(again.code, again.stderr).to.equal(args[0] === "rollback" ? 3 : 0);
      if (args[0] === "reset-app") {
        expect((await state()).db.documents_document).to.equal("0:-");
      } else {
        expect((await state()).db.columns).not.to.contain("slug");
      }
    }
  });

  it("every backup the faults left is complete: the oldest and the newest verify", async function () {
    const ids = await stack.backupIds();
    for (const id of [ids[0], ids[ids.length - 1]]) {
      const verify = await stack.ops(["verify", id]);
      expect(verify.code, `${id}: ${verify.stderr}`).to.equal(0);
    }
  });
});
