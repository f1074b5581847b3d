/**
 * Disaster recovery on a new host, with a realistic (here: tight) retention: production with keep 2 and an
 * off-host repository (a real restic REST server: `rclone serve restic --append-only` in a container). Every
 * container and volume of the stack is removed, the local repository and keys included; the same stack state
 * and secrets come up on the emptied engine, its scheduler backs up the freshly bootstrapped database every
 * 10 s, and the restore from off the host brings the data and the old host's history back, which the next
 * scheduled backups carry on. The originals never leave the off-host repository.
 */
import { expect } from "chai";
import { docker } from "../../ops/engine/docker";
import {
  applier,
  offsiteEnv,
  offsiteRepository,
  OFFSITE_PASS,
  startOffsiteServer,
  stopOffsiteServer,
  TestStack,
} from "../harness/stack";

describe("faults: disaster recovery on a new host from the append-only off-host repository", function () {
  const stack = new TestStack("dis", "production", { "edms:version": "2.0.0" });
  let fingerprint: Record<string, string>;

  before(async () => {
    await stack.destroy();
    await startOffsiteServer();
    // keep 2: what retention keeps beyond the newest two (bootstrap backups, originals off-host) shows at once.
    stack.set("edms:backup", {
      keep: 2,
      offsite: { repository: { secure: await offsiteRepository("dis") } },
    });
    const { error } = await stack.up();
    expect(error, error?.message).to.equal(undefined);
    await stack.seed("d");
    // Names with a newline, a backslash or a leading dash come back from off the host too.
    await stack.writeOddMedia();
    fingerprint = await stack.fingerprint();
  });
  after(async () => {
    await stack.destroy();
    await stopOffsiteServer();
  });
  const offsiteIds = async (): Promise<string[]> => {
    const listed = await stack.ops(["backups", "list", "--offsite", "--json"]);
    expect(listed.code, listed.stderr).to.equal(0);
    return JSON.parse(listed.stdout).offsite.map((b: { id: string }) => b.id);
  };

  it("4. disaster recovery on an emptied engine from the off-host repository: keys from the Pulumi secrets only; the new host's scheduled backups of the fresh database push no original out, and after the restore they go on with the history", async function () {
    // keep 2, three backups: the originals are what retention left off the host.
    for (const reason of ["manual", "manual"]) {
      expect((await stack.ops(["backup", "--reason", reason])).code).to.equal(0);
    }
    const status = JSON.parse((await stack.ops(["status", "--json"])).stdout);
    expect(status.backups.offsite).to.deep.include({ reachable: true, missing: [] });
    expect(status.backups.offsite.repository).to.equal("(secret)");
    const originals = await offsiteIds();
    expect(originals).to.have.length.of.at.least(2);
    const id = originals[originals.length - 1];
    const oldDeployments = status.deployments as { deployedAt: string }[];
    expect(oldDeployments).to.have.length.of.at.least(1);

    // The disaster: every container and volume of the stack gone, the local repository and keys included.
    await stack.destroy({ keepState: true });
    expect(await stack.volumes()).to.deep.equal([]);
    // The same stack state and secrets on a new host, whose `up` starts the scheduler (every 10 s here).
    const saved = stack.config["edms:backup"];
    stack.set("edms:backup", { ...(saved as object), schedule: "*/10 * * * * *" });
    const scheduler = `${stack.prefix}-scheduler`;
    try {
      const { error, hooks } = await stack.up();
      expect(error, error?.message).to.equal(undefined);
      expect(hooks.map((h) => h.name)).to.include.members(["backupInit", "migrate", "bootstrap"]);
      expect(await stack.psql("SELECT count(*) FROM documents_document;")).to.equal("0");

      // Scheduled backups of the freshly bootstrapped database: tagged `bootstrap`, they push no original out,
      // locally (keep 2) or off the host. The scheduler is stopped while the test looks.
      await stack.waitForScheduler(
        "three scheduled backups of the fresh database",
        120,
        () => stack.scheduleRuns(),
        (runs) => runs.filter((r) => r.ok).length >= 3,
      );
      await docker(["stop", scheduler]);
      const local = JSON.parse((await stack.ops(["backups", "list", "--json"])).stdout).complete;
      expect(local, "locally, bootstrap backups fill the newest 2 slots").to.have.length(2);
      expect(local.every((b: { bootstrap?: boolean }) => b.bootstrap === true)).to.equal(true);
      expect(await offsiteIds()).to.include.members(originals);
      // The new host knows only its own deployment until the old host's backups are in its repository (the
      // host reads nothing back from the append-only off-host repository on its own).
      const fresh = JSON.parse((await stack.ops(["status", "--json"])).stdout).deployments;
      expect(fresh).to.have.length(1);

      // Even without the keys the hook stored, the Pulumi secrets alone are enough.
      await stack.onVolume(stack.backupsVolume, "rm -rf /v/.keys");
      const refused = await stack.ops([
        "restore",
        id,
        "--from",
        "offsite",
        "--confirm",
        "production",
      ]);
      expect(refused.code).to.equal(2);
      expect(refused.stderr).to.contain("are not on its Docker host");
      expect(refused.stderr).to.contain("pulumi stack output backupPassword --show-secrets");
      const restored = await stack.ops(
        ["restore", id, "--from", "offsite", "--confirm", "production"],
        offsiteEnv(stack),
      );
      expect(restored.code, restored.stderr).to.equal(0);
      expect(restored.stdout).to.contain("row counts and media files equal the backup");
      expect(restored.stdout).to.match(
        new RegExp(
          `To undo, run: edms-ops restore \\S+-pre-restore --stack ${stack.name} --confirm production`,
        ),
      );
      expect(await stack.fingerprint()).to.deep.equal(fingerprint);
      expect(await offsiteIds()).to.include.members(originals);
      const afterRestore = JSON.parse((await stack.ops(["status", "--json"])).stdout);
      // The restored backup brought the old host's history with it (its undo backup adopted it): it goes on.
      expect(afterRestore.deployments.slice(0, oldDeployments.length)).to.deep.equal(
        oldDeployments,
      );
      expect(afterRestore.deployments.slice(oldDeployments.length)).to.deep.equal(fresh);
      // The scheduler again: its next backup is of the restored data (real data, not bootstrap), and it
      // carries the history on.
      const restoredAt = new Date().toISOString();
      await docker(["start", scheduler]);
      const [next] = (
        await stack.waitForScheduler(
          "a scheduled backup of the restored data",
          90,
          () => stack.scheduleRuns(),
          (runs) => runs.some((r) => r.ok && r.backup && r.started > restoredAt),
        )
      ).filter((r) => r.ok && r.backup && r.started > restoredAt);
      await docker(["stop", scheduler]);
      const listed = JSON.parse((await stack.ops(["backups", "list", "--json"])).stdout).complete;
      const scheduled = listed.find((b: { id: string }) => b.id === next.backup);
      expect(scheduled, "the scheduled backup after the restore is kept").not.to.equal(undefined);
      expect(scheduled.bootstrap, "a backup of the restored data is real data").to.equal(undefined);
      expect(JSON.parse((await stack.ops(["status", "--json"])).stdout).deployments).to.deep.equal(
        afterRestore.deployments,
      );
      const health = await stack.ops(["health", "--wait", "60"]);
      expect(health.code, health.stdout).to.equal(0);
      const login = await stack.django(
        'from django.test import Client\nc = Client()\nprint(c.login(username="clerk-d", password="clerk-pass-d"), c.login(username="clerk-d", password="wrong"))',
      );
      expect(login).to.equal("True False");
      // No secret of the off-host repository reached argv-visible places or the output.
      const secrets = [...applier.secrets(stack.name), OFFSITE_PASS];
      for (const secret of secrets) {
        expect(restored.stdout + restored.stderr).not.to.contain(secret);
      }
    } finally {
      stack.set("edms:backup", saved);
      expect((await stack.up()).error, "the scheduler removed again").to.equal(undefined);
    }
  });
});
