/**
 * Scheduled backups on one staging stack with a 20-second schedule: the scheduler container the program
 * deploys takes backups on its own, pruned by the same retention policy (keep 1 + keepDaily 1, rollback
 * targets kept); `docker stop` during a backup records it interrupted and leaves no lock; after a simulated
 * reboot (stopped past a due, started again) it catches the missed due up;
 * a scheduled backup that fails (postgres stopped) is recorded failed, and `health` reports it while it still
 * exits 0 with the web check passing.
 */
import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { docker } from "../../ops/engine/docker";
import type { ScheduleRun } from "../../ops/schedule/records";
import { applier, TestStack } from "../harness/stack";

const EVERY_20_SECONDS = "*/20 * * * * *";

describe("e2e: scheduled backups", function () {
  const stack = new TestStack("sched", "staging", {
    "edms:backup": { beforeDeploy: true, keep: 1, keepDaily: 1, schedule: EVERY_20_SECONDS },
  });
  const scheduler = `${stack.prefix}-scheduler`;

  const records = () => stack.scheduleRecords();
  const runs = () => stack.scheduleRuns();
  /** Polls until `done` holds for the runs recorded, or fails after `seconds`. */
  const waitForRuns = (what: string, seconds: number, done: (runs: ScheduleRun[]) => boolean) =>
    stack.waitForScheduler(what, seconds, runs, done);
  const listed = async () => {
    const result = await stack.ops(["backups", "list", "--json"]);
    expect(result.code, result.stderr).to.equal(0);
    return JSON.parse(result.stdout).complete as { id: string; reason: string; target?: string }[];
  };
  const inspect = async (format: string) =>
    (await docker(["inspect", "-f", format, scheduler])).stdout.trim();

  before(async () => {
    await stack.destroy();
  });
  after(async () => {
    await stack.destroy();
  });

  it("deploys a scheduler on the host: restarted with the engine, no engine socket, only the backups and media volumes and the data network, no secret in its env", async function () {
    const deploying = Date.now();
    const first = await stack.up("1.0.0");
    expect(first.error, first.error?.message).to.equal(undefined);
    // Reported, not asserted (timings flake on a loaded machine).
    console.log(
      `      (first deploy incl. the scheduler image build: ${(Date.now() - deploying) / 1000} s)`,
    );
    expect(await inspect("{{.State.Running}} {{.HostConfig.RestartPolicy.Name}}")).to.equal(
      "true unless-stopped",
    );
    // What a backup needs and nothing more: no host path, the media read-only, no way to the engine.
    const mounts = await inspect(
      "{{range .Mounts}}{{.Type}}:{{.Name}}:{{.Destination}}:{{.RW}} {{end}}",
    );
    expect(mounts.split(" ").sort()).to.deep.equal([
      `volume:${stack.prefix}_backups:/backups:true`,
      `volume:${stack.prefix}_media_files:/edms/media:false`,
    ]);
    expect(await inspect("{{range $n, $v := .NetworkSettings.Networks}}{{$n}} {{end}}")).to.equal(
      `${stack.prefix}-data`,
    );
    const socket = await docker(
      [
        "exec",
        scheduler,
        "sh",
        "-c",
        "ls /var/run/docker.sock /run/docker.sock; command -v docker",
      ],
      { allowFailure: true },
    );
    expect(socket.code, socket.stdout).not.to.equal(0);
    expect(socket.stdout.trim()).to.equal("");
    const inspected = (await docker(["inspect", scheduler])).stdout;
    for (const secret of applier.secrets(stack.name)) {
      expect(inspected).not.to.contain(secret);
    }
    await stack.seed("a");
  });

  it("backs up on the schedule; retention keeps the newest scheduled backup and the rollback target", async function () {
    // A deploy while the scheduler runs: its pre-deploy backup (a rollback target) shares the stack's lock.
    const update = await stack.up("2.0.0");
    expect(update.error, update.error?.message).to.equal(undefined);
    const before = (await runs()).length;
    const recorded = await waitForRuns(
      "two scheduled backups after the deploy",
      90,
      (r) => r.slice(before).filter((x) => x.outcome === "ok").length >= 2,
    );
    // Stopped right after a record, while it sleeps until the next due: nothing is half done.
    await docker(["stop", scheduler]);
    const ok = (await runs()).filter((r) => r.outcome === "ok");
    expect(ok.length).to.be.at.least(2);
    for (const run of recorded.slice(before)) {
      expect(run, JSON.stringify(run)).to.deep.include({ schedule: EVERY_20_SECONDS, ok: true });
      expect(Date.parse(run.started)).to.be.at.least(Date.parse(run.due));
      expect(Date.parse(run.due) % 20_000).to.equal(0);
    }
    const seconds = recorded
      .slice(before)
      .map((r) => (Date.parse(r.finished) - Date.parse(r.started)) / 1000);
    console.log(
      `      (scheduled backups after the deploy: ${seconds.join(" s, ")} s from start to record; ` +
        `started ${recorded
          .slice(before)
          .map((r) => (Date.parse(r.started) - Date.parse(r.due)) / 1000)
          .join(" s, ")} s after their due)`,
    );
    const backups = await listed();
    const newest = ok[ok.length - 1].backup!;
    // keep 1 + keepDaily 1: of today's scheduled backups only the newest stays; the pre-deploy backup of
    // the update is the running release's rollback target and stays too.
    expect(backups.filter((b) => b.reason === "scheduled").map((b) => b.id)).to.deep.equal([
      newest,
    ]);
    for (const older of ok.slice(0, -1)) {
      expect(backups.map((b) => b.id)).not.to.include(older.backup);
    }
    expect(backups.filter((b) => b.reason === "pre-deploy").map((b) => b.target)).to.deep.equal([
      "2.0.0",
    ]);
    const status = await stack.ops(["status", "--json"]);
    expect(status.code, status.stderr).to.equal(0);
    const schedule = JSON.parse(status.stdout).schedule;
    expect(schedule).to.deep.include({ schedule: EVERY_20_SECONDS, scheduler: "stopped" });
    expect(schedule.lastRun).to.deep.include({ outcome: "ok", backup: newest });
    const text = await stack.ops(["status"]);
    expect(text.stdout).to.contain(
      `scheduled backups \`${EVERY_20_SECONDS}\` (UTC), scheduler stopped`,
    );
    expect(text.stdout).to.contain(`(${newest})`);
  });

  it("docker stop during a scheduled backup records it interrupted and leaves no lock behind", async function () {
    const before = (await runs()).length;
    // A session holding a table exclusively keeps the next scheduled backup in its dump (a scheduled
    // backup otherwise ends within two seconds), so the stop below lands inside it.
    const postgres = `${stack.prefix}-postgres`;
    const holdTable =
      "BEGIN; LOCK TABLE auth_user IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(40); COMMIT;";
    await docker(["exec", "-d", postgres, "psql", "-U", "edms", "-d", "edms", "-c", holdTable]);
    // What a scheduler killed mid-dump would leave in its layer: plain-text data outside restic.
    const leftover = await fs.promises.mkdtemp(path.join(os.tmpdir(), "edms-stage-"));
    await fs.promises.writeFile(path.join(leftover, "db.dump"), "rows of a killed run");
    await docker(["cp", path.join(leftover, "db.dump"), `${scheduler}:/edms/database/db.dump`]);
    await fs.promises.rm(leftover, { recursive: true, force: true });
    await docker(["start", scheduler]);
    // The stack's lock, held by the scheduled backup in the scheduler itself: the backup is under way.
    // (Asked of the lock file, not of `status`: status counts rows, and would wait for the table too.)
    const deadline = Date.now() + 40_000;
    const heldScript = "exec 9</backups/.stack-lock && ! flock -n -s 9 && cat /backups/.stack-lock";
    for (;;) {
      const held = await docker(["exec", scheduler, "sh", "-c", heldScript], {
        allowFailure: true,
      });
      if (held.stdout.includes("the scheduler's `backup --reason scheduled`")) {
        break;
      }
      expect(Date.now(), "a scheduled backup holding the lock").to.be.below(deadline);
      await new Promise((r) => setTimeout(r, 200));
    }
    const stopping = Date.now();
    await docker(["stop", scheduler]);
    // Within the stop timeout (30 s), not killed by it.
    expect(Date.now() - stopping).to.be.below(25_000);
    console.log(
      `      (docker stop during a backup, record written: ${(Date.now() - stopping) / 1000} s)`,
    );
    expect(await inspect("{{.State.ExitCode}}")).to.equal("143");
    const last = (await runs()).slice(before).pop()!;
    expect(last).to.deep.include({ outcome: "failed", ok: false, backup: null });
    expect(last.error).to.match(/^interrupted: the scheduler was stopped \(SIGTERM/);
    // Neither the planted leftover nor this run's dump stays in the stopped container's layer.
    const changed = (await docker(["diff", scheduler])).stdout;
    expect(changed).not.to.match(/\/edms\/database\/./);
    await docker([
      "exec",
      postgres,
      "psql",
      "-U",
      "edms",
      "-d",
      "edms",
      "-c",
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(40)%' AND pid <> pg_backend_pid();",
    ]);
    // The lock died with its holder: the next operation does not wait for it.
    const status = await stack.ops(["status", "--json"]);
    expect(JSON.parse(status.stdout).operation).to.equal(null);
    const next = await stack.ops(["backups", "prune"], { EDMS_LOCK_WAIT: "0" });
    expect(next.code, next.stderr).to.equal(0);
  });

  it("shares the stack lock with edms-ops both ways: each waits for the other, and says who holds it", async function () {
    // The scheduler's side of the lock, in a container of its image with its backups volume (the scheduler
    // itself stays stopped, so no due interferes): flock on the volume's lock file, as its backups take it.
    const image = await inspect("{{.Config.Image}}");
    const side = (script: string, ...flags: string[]) =>
      docker(
        [
          "run",
          "--rm",
          ...flags,
          "-v",
          `${stack.prefix}_backups:/backups`,
          "--entrypoint",
          "sh",
          image,
          "-c",
          script,
        ],
        { allowFailure: true },
      );
    const holder = `${stack.prefix}-lockprobe`;
    const probe = await side(
      `exec 9>>/backups/.stack-lock; flock -n 9 || exit 1; echo "${holder}" > /backups/.stack-lock; sleep 12`,
      "-d",
    );
    expect(probe.code, probe.stderr).to.equal(0);
    await new Promise((r) => setTimeout(r, 1500));
    const refused = await stack.ops(["backup"], { EDMS_LOCK_WAIT: "2" });
    expect(refused.code, refused.stderr).to.equal(75);
    expect(refused.stderr).to.contain(`busy: ${holder} holds its operation lock`);
    // Once it lets go, edms-ops proceeds; while it holds the lock, the scheduler's side is refused.
    const taken = await stack.ops(["backup"], { EDMS_LOCK_WAIT: "30" });
    expect(taken.code, taken.stderr).to.equal(0);
    const newest = (await listed()).pop()!.id;
    const operator = stack.ops(["verify", newest]);
    const held = Date.now() + 30_000;
    while (!(await docker(["ps", "-q", "--filter", `name=^${stack.prefix}-ops$`])).stdout.trim()) {
      expect(Date.now(), "edms-ops holding the lock").to.be.below(held);
      await new Promise((r) => setTimeout(r, 200));
    }
    const waiting = await side(
      "exec 9>>/backups/.stack-lock; flock -n 9 || { cat /backups/.stack-lock; exit 75; }",
    );
    expect(waiting.code).to.equal(75);
    expect(waiting.stdout).to.contain(`\`verify ${newest}\` (edms-ops`);
    const verified = await operator;
    expect(verified.code, verified.stderr).to.equal(0);
  });

  it("after a simulated reboot it catches up the due it missed, at once", async function () {
    const before = (await runs()).length;
    // Stopped (previous test) past at least one due: the host was down.
    const stoppedAt = Date.now();
    await new Promise((r) => setTimeout(r, 21_000));
    await docker(["start", scheduler]);
    const started = Date.now();
    const recorded = await waitForRuns("the catch-up run", 30, (r) =>
      r.slice(before).some((x) => x.catchUp),
    );
    const catchUp = recorded.slice(before).find((x) => x.catchUp)!;
    // The interrupted backup left nothing in the way: restic's leftovers are cleared under the lock.
    expect(catchUp, JSON.stringify(catchUp)).to.deep.include({ outcome: "ok", ok: true });
    expect((await listed()).map((b) => b.id)).to.include(catchUp.backup);
    // For a due inside the downtime, started as soon as the scheduler was back (not at the next due). The
    // downtime ends at the scheduler's own start record, which node's start-up puts after `docker start`
    // returns: a due in between is still one the scheduler missed.
    const starts = (await records()).flatMap((r) => (r.kind === "start" ? [Date.parse(r.at)] : []));
    const back = starts.find((at) => at >= started - 2000);
    expect(back, "the scheduler's start record").to.be.a("number");
    expect(Date.parse(catchUp.due)).to.be.within(stoppedAt - 1000, back!);
    expect(Date.parse(catchUp.started) - back!).to.be.within(0, 15_000);
  });

  it("a failed scheduled backup is recorded; health reports it and still passes", async function () {
    await docker(["stop", stack.container("postgres")]);
    const stoppedAt = Date.now();
    const before = (await runs()).length;
    // A run that started with postgres already stopped: one that was dumping when it stopped fails with
    // whatever cut its stream, and is not what this test is about.
    const afterStop = (x: ScheduleRun) =>
      x.outcome === "failed" && Date.parse(x.started) >= stoppedAt;
    const recorded = await waitForRuns("a failed scheduled backup", 60, (r) =>
      r.slice(before).some(afterStop),
    );
    await docker(["stop", scheduler]);
    const failed = recorded.slice(before).find(afterStop)!;
    expect(failed).to.deep.include({ ok: false, backup: null });
    expect(failed.error).to.match(/postgres/i);
    await docker(["start", stack.container("postgres")]);

    const health = await stack.ops(["health", "--wait", "60"]);
    expect(health.code, health.stdout + health.stderr).to.equal(0);
    expect(health.stdout).to.match(/^ok +http \/health\//m);
    expect(health.stdout).to.match(
      /^WARN scheduled backups `\*\/20 \* \* \* \* \*` \(UTC\), scheduler stopped: .*ATTENTION: the last scheduled backup \(due [^)]+\) FAILED: .*postgres/im,
    );
    expect(health.stdout).to.match(/^info newest good backup: \S+-scheduled(-\d+)?, [\d.]+ h old/m);
    const json = JSON.parse((await stack.ops(["health", "--json"])).stdout);
    expect(json.healthy).to.equal(true);
    expect(json.schedule.lastRun).to.deep.include({ outcome: "failed" });
    expect(json.schedule.lastOk.backup).to.be.a("string");

    // A security review sees the same, and still no secret.
    const evidence = await stack.ops(["evidence", "--json"]);
    expect(evidence.code, evidence.stderr).to.equal(0);
    expect(JSON.parse(evidence.stdout).backup.schedule).to.deep.include({
      expression: EVERY_20_SECONDS,
      timezone: "UTC",
      runsOn: `the Docker host, container ${scheduler}`,
      scheduler: "stopped",
      lastOkDue: json.schedule.lastOk.due,
    });
    for (const secret of applier.secrets(stack.name)) {
      expect(evidence.stdout).not.to.contain(secret);
    }
  });
});
