/**
 * One scheduled attempt, with the engine replaced by stubs: what the scheduler records for each way a backup
 * ends, and that dues which found no backups volume are recorded once it is back.
 */
import { expect } from "chai";
import { validateSettings } from "../../../model/settings";
import * as backups from "../../../ops/backup/create";
import * as dockerLib from "../../../ops/engine/docker";
import * as sessions from "../../../ops/engine/session";
import * as markers from "../../../ops/store/markers";
import { busy, failure } from "../../../ops/core/errors";
import * as log from "../../../ops/core/log";
import * as schedule from "../../../ops/schedule/records";
import { scheduledBackup } from "../../../ops/schedule/scheduler";

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

describe("a scheduled attempt", function () {
  const settings = validateSettings("s", {
    environment: "staging",
    version: "1.0.0",
    backup: { schedule: "*/20 * * * * *" },
  });
  const due = new Date("2026-11-27T12:00:20Z");
  const hooks = { signal: new AbortController().signal };
  const saved: Record<string, unknown> = {};
  let written: schedule.ScheduleRecord[];
  let volume: boolean;
  let outcome: () => Promise<backups.BackupResult | null>;
  let restoreMarker: markers.RestoreMarker | null;

  const stub = <T extends object>(module: T, name: keyof T & string, value: unknown) => {
    saved[name] = module[name];
    (module as Mutable<T>)[name] = value as T[keyof T & string];
  };
  before(() => {
    stub(backups, "createBackup", () => outcome());
    stub(dockerLib, "volumeExists", async () => volume);
    // The lock is held by the stub; the marker is read inside it.
    stub(sessions, "withSession", (_s: unknown, _o: string, fn: (s: unknown) => unknown) => fn({}));
    stub(markers, "readMarker", async () => restoreMarker);
    stub(schedule, "appendScheduleRecord", async (_s: unknown, r: schedule.ScheduleRecord) => {
      written.push(r);
    });
    log.setQuiet(true);
  });
  after(() => {
    (backups as Mutable<typeof backups>).createBackup = saved.createBackup as never;
    (dockerLib as Mutable<typeof dockerLib>).volumeExists = saved.volumeExists as never;
    (sessions as Mutable<typeof sessions>).withSession = saved.withSession as never;
    (markers as Mutable<typeof markers>).readMarker = saved.readMarker as never;
    (schedule as Mutable<typeof schedule>).appendScheduleRecord =
      saved.appendScheduleRecord as never;
    log.setQuiet(false);
  });
  beforeEach(() => {
    written = [];
    volume = true;
    restoreMarker = null;
  });

  it("takes no backup while a restore is unfinished: skipped, naming the restore and its undo", async function () {
    let called = false;
    outcome = async () => {
      called = true;
      return null;
    };
    restoreMarker = { id: "2026-11-27T10-00-00Z-manual", undo: "2026-11-27T11-00-00Z-pre-restore" };
    await scheduledBackup(settings, due, false, hooks);
    expect(called, "a backup of the half-restored stack was taken").to.equal(false);
    expect(written[0]).to.deep.include({ outcome: "skipped", ok: false, backup: null });
    expect((written[0] as schedule.ScheduleRun).error).to.match(
      /^not taken while a restore is unfinished .*restore of 2026-11-27T10-00-00Z-manual incomplete.*edms-ops restore 2026-11-27T11-00-00Z-pre-restore --stack s/,
    );
  });

  it("records a backup taken, with its id and snapshot", async function () {
    outcome = async () =>
      ({ entry: { id: "2026-11-27T12-00-20Z-scheduled", snapshot: "ab12" } }) as never;
    await scheduledBackup(settings, due, false, hooks);
    expect(written).to.have.length(1);
    expect(written[0]).to.deep.include({
      kind: "run",
      schedule: "*/20 * * * * *",
      due: "2026-11-27T12:00:20.000Z",
      outcome: "ok",
      ok: true,
      catchUp: false,
      backup: "2026-11-27T12-00-20Z-scheduled",
      snapshot: "ab12",
      error: null,
    });
  });

  it("records a database without schema as nothing to do, not as a failure", async function () {
    outcome = async () => null;
    await scheduledBackup(settings, due, true, hooks);
    expect(written[0]).to.deep.include({
      outcome: "nothing",
      ok: true,
      catchUp: true,
      backup: null,
    });
  });

  it("records a lock that stayed busy as skipped, and a failure with its message and fix on one line", async function () {
    outcome = async () => {
      throw busy("Stack s is busy: `backup` holds its operation lock.", "Retry later.");
    };
    await scheduledBackup(settings, due, false, hooks);
    outcome = async () => {
      throw failure("Backup x failed.\nCause: disk full", "Free space on the volume.");
    };
    await scheduledBackup(settings, due, false, hooks);
    expect(written.map((r) => (r as schedule.ScheduleRun).outcome)).to.deep.equal([
      "skipped",
      "failed",
    ]);
    expect((written[1] as schedule.ScheduleRun).error).to.equal(
      "Backup x failed. | Cause: disk full | Free space on the volume.",
    );
  });

  it("takes no backup without the backups volume, and records those dues once it is back", async function () {
    let called = false;
    outcome = async () => {
      called = true;
      return null;
    };
    volume = false;
    await scheduledBackup(settings, due, false, hooks);
    await scheduledBackup(settings, new Date("2026-11-27T12:00:40Z"), false, hooks);
    expect(called).to.equal(false);
    expect(written).to.deep.equal([]);
    volume = true;
    await scheduledBackup(settings, new Date("2026-11-27T12:01:00Z"), false, hooks);
    expect(
      written.map((r) => [(r as schedule.ScheduleRun).due, (r as schedule.ScheduleRun).outcome]),
    ).to.deep.equal([
      ["2026-11-27T12:00:20.000Z", "failed"],
      ["2026-11-27T12:00:40.000Z", "failed"],
      ["2026-11-27T12:01:00.000Z", "nothing"],
    ]);
    expect((written[0] as schedule.ScheduleRun).error).to.match(
      /^not taken: the backups volume edms_backups was missing/,
    );
  });
});
