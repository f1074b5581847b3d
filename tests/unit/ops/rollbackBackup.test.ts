import { expect } from "chai";
import { REASONS } from "../../../model/hooks";
import type { Settings } from "../../../model/settings";
import { rollbackBackup } from "../../../ops/commands/rollbackSteps";
import { EXIT, OpsError } from "../../../ops/core/errors";
import type { Deployment } from "../../../ops/store/history";
import type { BackupEntry } from "../../../ops/store/restic";

describe("rollback --restore: the backup it restores", function () {
  const settings = { stack: "staging", version: "2.0.0" } as Settings;
  const v1 = { documents: "0001_initial" };
  const v2 = { documents: "0002_document_slug" };
  /** 1.0.0 as its newest deployment recorded it: the release a rollback from 2.0.0 goes back to. */
  const target = {
    version: "1.0.0",
    deployedAt: "2026-11-15T00:00:00.000Z",
    migrations: v1,
  } as unknown as Deployment;
  const backup = (time: string, release: string | null): BackupEntry => ({
    id: `${time.replace(/:/g, "-")}-pre-deploy`,
    snapshot: time,
    time,
    reason: REASONS.preDeploy,
    release,
    target: "2.0.0",
    stack: "staging",
    paths: [],
  });
  // An earlier round of 1.0.0 → 2.0.0, this round's backup of 1.0.0's data, then a redeploy of 2.0.0 with a
  // rebuilt image after its migrations ran: its data is 2.0.0's, yet labelled 1.0.0 (the release the proxy
  // still served).
  const earlier = backup("2026-11-10T10:00:00Z", "1.0.0");
  const ours = backup("2026-11-20T10:00:00Z", "1.0.0");
  const redeploy = backup("2026-11-21T10:00:00Z", "1.0.0");
  const schema: Record<string, Record<string, string>> = {
    [earlier.id]: v1,
    [ours.id]: v1,
    [redeploy.id]: v2,
  };
  const read: string[] = [];
  const migrationsOf = async (entry: BackupEntry) => {
    read.push(entry.id);
    return schema[entry.id];
  };
  const choose = (complete: BackupEntry[], history: Deployment[] = [target]) =>
    rollbackBackup(
      settings,
      { complete, hostTime: "2026-11-25T00:00:00Z" },
      history,
      target,
      migrationsOf,
    );
  const deployed = (at: string, preDeployBackup: string | null) =>
    ({
      version: "2.0.0",
      deployedAt: at,
      migrations: v1,
      preDeployBackup,
    }) as unknown as Deployment;

  beforeEach(() => read.splice(0));

  it("is the newest of this round whose data has the target's recorded migrations, whatever its label", async function () {
    expect(await choose([earlier, ours, redeploy])).to.equal(ours);
    expect(read).to.deep.equal([redeploy.id, ours.id]);
  });

  it("is never one a later redeploy of the release took: a release without migrations leaves the schema as it was", async function () {
    // 2.0.0 adds no migrations: deployed on `ours`, then a rebuilt image's redeploy backs up 2.0.0's data.
    const codeOnly = backup("2026-11-22T10:00:00Z", "2.0.0");
    schema[codeOnly.id] = v1;
    const first = deployed("2026-11-20T10:05:00.000Z", ours.id);
    const again = deployed("2026-11-22T10:05:00.000Z", codeOnly.id);
    expect(await choose([earlier, ours, codeOnly], [target, first, again])).to.equal(ours);
    expect(read).to.deep.equal([ours.id]);
    // The recorded backup forgotten since: bounded by that deployment's time instead.
    expect(
      await choose([earlier, ours, codeOnly], [target, deployed(first.deployedAt, "gone")]),
    ).to.equal(ours);
    // Deployed after a failed health gate's rebuilt redeploy: recorded on that newer backup, which holds
    // 2.0.0's schema and is passed over.
    const onRedeploy = deployed("2026-11-21T10:05:00.000Z", redeploy.id);
    expect(await choose([earlier, ours, redeploy, codeOnly], [target, onRedeploy, again])).to.equal(
      ours,
    );
  });

  it("is never one of an earlier round, nor one dated after the host's clock: refused, nothing read beyond", async function () {
    const ahead = backup("2027-01-01T00:00:00Z", "1.0.0");
    schema[ahead.id] = v1;
    const err = await choose([earlier, redeploy, ahead]).catch((e: OpsError) => e);
    expect(err).to.be.instanceOf(OpsError);
    expect((err as OpsError).exitCode).to.equal(EXIT.refused);
    expect((err as OpsError).message).to.contain(
      "No pre-deploy backup of 2.0.0 taken since 1.0.0 was deployed (2026-11-15T00:00:00.000Z) holds 1.0.0's migration state (1 passed over). Nothing was changed.",
    );
    expect(read).to.deep.equal([redeploy.id]);
  });
});
