/**
 * Issue 22: a stack with no data on its host: an external PostgreSQL (`edms:database`) and media in an S3
 * bucket (`edms:media`), deployed by the program onto a real engine. The database server is a real one in a
 * container outside the stack (tests/harness/externalPostgres.ts: TLS only, a certificate for its name from a
 * CA of the test's own, an admin role that is no superuser); the bucket is Ceph's radosgw
 * (tests/harness/s3Server.ts); both on their own network. First deploy, an update that keeps every row and
 * object and takes its backup first and drills it, damage and restore, reset-app, rollback, disaster
 * recovery (and a new empty bucket), scheduled backups and reset.
 */
import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import { docker } from "../../ops/engine/docker";
import {
  ADMIN_PASSWORD,
  asProvider,
  EXTERNAL_HOST,
  EXTERNAL_NETWORK,
  EXTERNAL_TLS_VOLUME,
  externalCaPem,
  recreateExternalDatabase,
  startExternalPostgres,
  stopExternalPostgres,
} from "../harness/externalPostgres";
import { opsKilledWhen, PROJECT_DIR, TestStack } from "../harness/stack";
import {
  bucketFingerprint,
  bucketMediaConfig,
  bucketKeys,
  deleteObject,
  makeBucket,
  putObject,
  S3_TLS_ENDPOINT,
  S3_SECRET_KEY,
  startS3Server,
  stopS3Server,
} from "../harness/s3Server";

const PG = "edms-test/postgres:15";
/** The stack's database on the server (`edms:database.name`); the server's `edms` is another's, left alone. */
const DB = "records";
const asDb = (sql: string) => asProvider(sql, DB);
/** Another stack's object in the same bucket: nothing of this stack's may touch it. */
const FOREIGN = "edms-media/other-stack/keep.bin";

describe("e2e: a stack on an external PostgreSQL (TLS, an admin that is no superuser)", function () {
  let stack: TestStack;
  let bucket = "edms-media";
  /** Rows of every data table and every object under the stack's prefix, by content. */
  const fingerprint = async (): Promise<Record<string, string>> => ({
    ...(await stack.fingerprint({ media: false })),
    media: await bucketFingerprint(`${bucket}/${stack.prefix}`),
  });
  const caFile = path.join(PROJECT_DIR, "external-db-ca.pem");
  // https with the test CA, as an on-premises S3 server with a private CA (`media.caCertificateFile`).
  const media = (name: string) => bucketMediaConfig(name, EXTERNAL_NETWORK, caFile);
  before(async function () {
    // A killed run's S3 server would hold the network the database server's start removes first.
    await stopS3Server();
    await startExternalPostgres();
    await Promise.all([
      recreateExternalDatabase(DB),
      startS3Server(EXTERNAL_NETWORK, EXTERNAL_TLS_VOLUME),
    ]);
    await Promise.all([makeBucket("edms-media"), makeBucket("edms-media-new")]);
    await putObject(FOREIGN, "another stack's document");
    fs.writeFileSync(caFile, await externalCaPem());
    stack = new TestStack("ext", "staging", {
      "edms:database": {
        host: EXTERNAL_HOST,
        name: DB,
        user: "edms_admin",
        password: { secure: ADMIN_PASSWORD },
        sslMode: "verify-full",
        caCertificateFile: caFile,
        network: EXTERNAL_NETWORK,
      },
      "edms:media": media(bucket),
      "edms:backup": { beforeDeploy: true, drillBeforeDeploy: true, schedule: "off", keep: 5 },
    });
    await stack.destroy();
  });
  after(async function () {
    await stack.destroy();
    await stopS3Server();
    await stopExternalPostgres();
  });

  it("0. a stack that still has its own database volume is not switched to the external one: refused at the first hook, nothing removed", async function () {
    const own = stack.names.postgresVolume;
    await docker(["volume", "create", "--label", `edms.stack=${stack.name}`, own]);
    const { error } = await stack.up("1.0.0");
    expect(error?.message).to.match(/still has its own database in volume/);
    expect(await stack.volumes()).to.include(own);
    expect(await asDb("SELECT count(*) FROM pg_tables WHERE schemaname = 'public';")).to.equal("0");
    await docker(["volume", "rm", own]);
  });

  it("0b. a stack whose media volume holds the app's files is not switched to the bucket: refused at the first hook, nothing removed", async function () {
    const volume = stack.names.mediaVolume;
    await docker(["volume", "create", "--label", `edms.stack=${stack.name}`, volume]);
    const run = ["run", "--rm", "-u", "0", "--entrypoint", "sh", "-v", `${volume}:/m`, PG, "-c"];
    const shell = (script: string) => docker([...run, script]);
    await shell("mkdir -p /m/documents && echo scan > /m/documents/scan.pdf");
    const { error } = await stack.up("1.0.0");
    expect(error?.message).to.match(/holds the app's files/);
    const left = await shell("cat /m/documents/scan.pdf");
    expect(left.stdout.trim()).to.equal("scan");
    await stack.destroy({ keepState: true });
  });

  it("1. first deploy: no postgres container or volume; migrate and bootstrap ran there; web and worker log in as the app role over TLS", async function () {
    const { error, hooks } = await stack.up("1.0.0");
    expect(error, error?.message).to.equal(undefined);
    expect(hooks.map((h) => h.name)).to.include.members(["backupInit", "migrate", "bootstrap"]);
    const all = await stack.containers({ all: true, format: "{{.Names}}" });
    expect(all).not.to.include(stack.container("postgres"));
    expect(await stack.volumes()).not.to.include(stack.names.postgresVolume);
    expect(await asDb("SELECT username FROM auth_user WHERE is_superuser;")).to.equal("admin");
    // The schema belongs to the admin role (migrate connected as it), never to a superuser.
    expect(
      await asDb(
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public' ORDER BY 1;",
      ),
    ).to.equal("edms_admin");
    // A request through web and a task through the worker, then every session they hold: the app role, TLS.
    await stack.seed("a");
    const sessions = await asDb(
      "SELECT DISTINCT a.usename || ':' || s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) " +
        "WHERE a.datname = 'records' AND a.usename <> 'postgres' AND a.pid <> pg_backend_pid() ORDER BY 1;",
    );
    expect(sessions).to.equal("edms_app:true");
    // Uploads went to the bucket under the stack's prefix (web mounts no media), and the worker read each
    // from there: its checksum is the object's.
    const mounts = await docker([
      "inspect",
      "-f",
      "{{range .Mounts}}{{.Destination}} {{end}}",
      stack.container("web"),
    ]);
    expect(mounts.stdout).not.to.contain("/srv/media");
    const objects = await bucketFingerprint(`${bucket}/${stack.prefix}`);
    expect(objects).to.match(/documents\/\d{4}\/\d{2}\/contract-a-0\S*\.bin/);
    const checked = await asDb(
      "SELECT checksum || '  ' || file FROM documents_document WHERE checksum <> '' ORDER BY id DESC LIMIT 1;",
    );
    expect(objects.split("\n")).to.include(checked);
    const health = await stack.ops(["health", "--json"]);
    expect(health.code, health.stdout + health.stderr).to.equal(0);
    const checks = JSON.parse(health.stdout).checks as { name: string; ok: boolean }[];
    expect(checks.find((c) => c.name === "postgres")?.ok).to.equal(true);
  });

  it("2. update 1.0.0 → 2.0.0: the pre-deploy backup dumps the external database and copies the bucket, every row and object identical, the backup verifies", async function () {
    const before = await fingerprint();
    const { error, hooks } = await stack.up("2.0.0");
    expect(error, error?.message).to.equal(undefined);
    expect(hooks.map((h) => h.name)).not.to.include("bootstrap");
    const pre = hooks.find((h) => h.name === "preDeployBackup");
    expect(pre?.stderr).to.match(/dumping database/);
    // The drill restored it on a scratch server and rehearsed 2.0.0's migrate there, before the live one.
    const drill = hooks.find((h) => h.name === "preDeployDrill");
    expect(drill?.stdout + (drill?.stderr ?? "")).to.match(/rehears/i);
    expect(pre?.stderr).to.match(/copying bucket edms-media\//);
    const after = await fingerprint();
    expect(after).to.deep.equal(before);
    expect(await stack.documentsSchema()).to.deep.equal({
      migration: "0002_document_slug",
      slug: true,
    });
    const backups = JSON.parse((await stack.ops(["backups", "list", "--json"])).stdout).complete;
    expect(backups).to.have.length(1);
    expect(backups[0]).to.deep.include({ reason: "pre-deploy", release: "1.0.0", target: "2.0.0" });
    const verify = await stack.ops(["verify", backups[0].id]);
    expect(verify.code, verify.stdout + verify.stderr).to.equal(0);
    const status = JSON.parse((await stack.ops(["status", "--json"])).stdout);
    expect(status.containers[`database ${EXTERNAL_HOST}:5432`]).to.equal("reachable");
    expect(
      status.containers[`media bucket ${bucket}/${stack.prefix} at ${S3_TLS_ENDPOINT}`],
    ).to.equal("reachable");
    expect(status.runningVersion).to.equal("2.0.0");
    expect(status.users).to.equal(3);
  });

  it("3. the admin's password and the bucket's secret key are in no container's env or argv, nor in any output", async function () {
    const ids = await stack.containers({ all: true, format: "{{.ID}}" });
    const inspected = (await docker(["inspect", ...ids])).stdout;
    expect(inspected).not.to.contain(ADMIN_PASSWORD);
    expect(inspected).not.to.contain(S3_SECRET_KEY);
    const files = await docker(["exec", stack.container("web"), "sh", "-c", "cat /run/secrets/*"]);
    expect(files.stdout).not.to.contain(ADMIN_PASSWORD);
    const backup = await stack.ops(["backup"]);
    expect(backup.code, backup.stderr).to.equal(0);
    expect(backup.stdout + backup.stderr).not.to.contain(ADMIN_PASSWORD);
    expect(backup.stdout + backup.stderr).not.to.contain(S3_SECRET_KEY);
  });

  it("4. backup → damage (rows deleted, a table dropped, objects deleted, overwritten and added) → restore killed while it copies → again: identical; a missing right and a foreign claim refused first", async function () {
    await stack.seed("b", 2);
    // Keys that look like options, filter patterns or the stack's claim (uploads may be called anything).
    const odd = `${bucket}/${stack.prefix}/documents`;
    await putObject(`${odd}/.edms-stack`, "%PDF-1.4 an upload named like the claim");
    await putObject(`${odd}/deep/.edms-stack`, `${"x".repeat(200)}`);
    await putObject(`${odd}/-rf/--help`, "three");
    await putObject(`${odd}/back\\slash`, "two");
    await putObject(`${odd}/ünï cödé [1] {2} *?.pdf`, "four");
    const backup = await stack.ops(["backup"]);
    expect(backup.code, backup.stderr).to.equal(0);
    const id = JSON.parse((await stack.ops(["backups", "list", "--json"])).stdout).complete.pop()
      .id;
    const before = await fingerprint();
    await asDb(
      "DELETE FROM documents_document WHERE id = (SELECT min(id) FROM documents_document);\n" +
        "DROP TABLE systemsettings_systemsetting CASCADE;",
    );
    const keys = await bucketKeys(`${bucket}/${stack.prefix}`);
    const [gone, changed] = ["contract-b-0", "contract-b-1"].map(
      (name) => keys.find((k) => k.includes(name)) as string,
    );
    await deleteObject(`${bucket}/${stack.prefix}/${gone}`);
    await putObject(`${bucket}/${stack.prefix}/${changed}`, "overwritten");
    await putObject(`${bucket}/${stack.prefix}/documents/stray.bin`, "added after the backup");
    expect(await bucketFingerprint(`${bucket}/${stack.prefix}`)).not.to.equal(before.media);
    expect(await asDb("SELECT to_regclass('systemsettings_systemsetting') IS NULL;")).to.equal("t");

    // Without pg_signal_backend the app's sessions cannot be ended: refused, naming the grant.
    await asDb("REVOKE pg_signal_backend FROM edms_admin;");
    const refused = await stack.ops(["restore", id, "--confirm", stack.name]);
    await asDb("GRANT pg_signal_backend TO edms_admin;");
    expect(refused.code, refused.stderr).to.equal(1);
    expect(refused.stderr).to.match(/pg_signal_backend/);
    expect(
      await asDb(
        "SELECT count(*) FROM pg_database WHERE datname NOT IN ('edms', 'records', 'postgres', 'template0', 'template1');",
      ),
    ).to.equal("0");

    // Another stack's prefix inside this one's: its objects would go with the sync; refused before anything.
    const nested = `${bucket}/${stack.prefix}/nested/.edms-stack`;
    await putObject(nested, "other-stack\n");
    const foreign = await stack.ops(["restore", id, "--confirm", stack.name]);
    expect(foreign.code, foreign.stdout + foreign.stderr).to.equal(2);
    expect(foreign.stderr).to.match(/another stack keeps its media at e2e-ext\/nested/);
    await deleteObject(nested);
    // Killed as it starts copying the mirror back to the bucket: run again, it finishes the copy.
    const killed = await opsKilledWhen(
      ["restore", id, "--confirm", stack.name, "--stack", stack.name],
      /back to the restored media/,
    );
    expect(killed.signal, killed.stderr).to.equal("SIGKILL");
    expect(await stack.lockLeft(), "the lock container outlived the killed edms-ops").to.equal("");
    const restored = await stack.ops(["restore", id, "--confirm", stack.name]);
    expect(restored.code, restored.stdout + restored.stderr).to.equal(0);
    expect(await fingerprint()).to.deep.equal(before);
    expect(await bucketKeys("edms-media/other-stack")).to.deep.equal(["keep.bin"]);
    // Only the stack's database is left: the side and the replaced one are gone, the server otherwise untouched.
    expect(
      await asDb(
        "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE NOT datistemplate;",
      ),
    ).to.equal("edms,postgres,records");
    expect(
      await asDb(
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public' ORDER BY 1;",
      ),
    ).to.equal("edms_admin");
    const health = await stack.ops(["health"]);
    expect(health.code, health.stdout + health.stderr).to.equal(0);
  });

  it("4b. reset-app documents empties that app only, after its backup", async function () {
    const before = await fingerprint();
    const result = await stack.ops(["reset-app", "documents", "--confirm", stack.name]);
    expect(result.code, result.stdout + result.stderr).to.equal(0);
    const undo = /edms-ops restore (\S+-pre-reset-app)/.exec(result.stdout)?.[1];
    expect(undo, result.stdout).to.be.a("string");
    const after = await fingerprint();
    expect(after.documents_document).to.equal("0:-");
    expect(after.media, "reset-app keeps the media").to.equal(before.media);
    expect(after.auth_user).to.equal(before.auth_user);
    // Its undo is a backup of this database, as test 4's: the restore proven there takes it back.
    const listed = JSON.parse((await stack.ops(["backups", "list", "--json"])).stdout).complete;
    expect(listed.map((b: { id: string }) => b.id)).to.include(undo);
  });

  it("4c. rollback --previous: 2.0.0's migrations reversed on the external database, every row kept, 1.0.0 healthy", async function () {
    const before = await fingerprint();
    const result = await stack.ops(["rollback", "--previous", "--backup-first"]);
    // No Pulumi CLI here: the data steps are done, the redeploy is left to run (exit 3, incomplete).
    expect(result.code, result.stdout + result.stderr).to.equal(3);
    expect(result.stdout).to.contain("migrate documents 0001_initial");
    expect(await stack.documentsSchema()).to.deep.equal({ migration: "0001_initial", slug: false });
    const { error } = await stack.up("1.0.0");
    expect(error, error?.message).to.equal(undefined);
    expect(await fingerprint()).to.deep.equal(before);
    expect((await stack.ops(["health"])).code).to.equal(0);
  });

  it("5. disaster recovery onto an empty engine, the external database and the bucket still there: every row and object kept, nothing loaded over them, healthy", async function () {
    const before = await fingerprint();
    await stack.destroy({ keepState: true });
    const { error, hooks } = await stack.up();
    expect(error, error?.message).to.equal(undefined);
    const ran = hooks.map((h) => h.name);
    // A new host (a new redis container) runs them again; bootstrap finds users and loads nothing.
    expect(ran).to.include.members(["backupInit", "migrate", "bootstrap"]);
    expect(hooks.find((h) => h.name === "bootstrap")?.stderr).to.match(/fixtures not loaded/);
    expect(await fingerprint()).to.deep.equal(before);
    const health = await stack.ops(["health"]);
    expect(health.code, health.stdout + health.stderr).to.equal(0);
  });

  it("5b. the bucket lost: on a new empty bucket, a restore of the newest backup brings every object back", async function () {
    const backup = await stack.ops(["backup"]);
    expect(backup.code, backup.stderr).to.equal(0);
    const id = backup.stdout.trim();
    const before = await fingerprint();
    bucket = "edms-media-new";
    stack.set("edms:media", media(bucket));
    const { error } = await stack.up();
    expect(error, error?.message).to.equal(undefined);
    // Only the stack's claim on its prefix, written by the deploy.
    expect(await bucketKeys(`${bucket}/${stack.prefix}`)).to.deep.equal([".edms-stack"]);
    const restored = await stack.ops(["restore", id, "--confirm", stack.name]);
    expect(restored.code, restored.stdout + restored.stderr).to.equal(0);
    expect(await fingerprint()).to.deep.equal(before);
    expect((await stack.ops(["health"])).code).to.equal(0);
  });

  it("6. scheduled backups: the scheduler dumps the external database as the backup role over TLS, without an engine", async function () {
    const backup = stack.config["edms:backup"] as Record<string, unknown>;
    stack.set("edms:backup", { ...backup, schedule: "*/20 * * * * *" });
    const { error } = await stack.up();
    expect(error, error?.message).to.equal(undefined);
    const runs = await stack.waitForScheduler(
      "a scheduled backup",
      120,
      () => stack.scheduleRuns(),
      (r) => r.some((run) => run.outcome === "ok"),
    );
    const ok = runs.find((run) => run.outcome === "ok")!;
    const log = await docker(["logs", `${stack.prefix}-scheduler`]);
    expect(log.stdout + log.stderr).to.match(/copying bucket edms-media-new\//);
    const listed = JSON.parse((await stack.ops(["backups", "list", "--json"])).stdout).complete;
    const taken = listed.find((b: { id: string }) => b.id === ok.backup);
    expect(taken).to.deep.include({ reason: "scheduled" });
    // Its dump holds the rows the server has: restic's copy verified against a scratch restore.
    const verify = await stack.ops(["verify", taken.id]);
    expect(verify.code, verify.stdout + verify.stderr).to.equal(0);
  });

  it("7. reset (staging): the announced backup, then the schemas the admin owns emptied, never another role's or the server; the next up is a fresh first deploy", async function () {
    await asDb(
      "CREATE ROLE other_owner NOLOGIN; CREATE SCHEMA foreign_data AUTHORIZATION other_owner;" +
        " CREATE TABLE foreign_data.keep (x int); ALTER TABLE foreign_data.keep OWNER TO other_owner;" +
        " INSERT INTO foreign_data.keep VALUES (1);",
    );
    // The admin cannot read another role's table: the announced backup fails, and nothing is emptied.
    const failed = await stack.ops(["reset", "--confirm", stack.name]);
    expect(failed.code, failed.stdout + failed.stderr).to.equal(1);
    expect(failed.stderr).to.match(/foreign_data\.keep/);
    // The scheduler it stopped first runs again: a reset that changed nothing leaves its backups going.
    const scheduler = `${stack.prefix}-scheduler`;
    expect(
      (await docker(["inspect", "-f", "{{.State.Running}}", scheduler])).stdout.trim(),
    ).to.equal("true");
    expect(
      Number(await asDb("SELECT count(*) FROM pg_tables WHERE schemaname = 'public';")),
    ).to.be.greaterThan(5);
    await asDb(
      "GRANT USAGE ON SCHEMA foreign_data TO edms_admin; GRANT SELECT ON foreign_data.keep TO edms_admin;",
    );
    const result = await stack.ops(["reset", "--confirm", stack.name]);
    expect(result.code, result.stdout + result.stderr).to.equal(0);
    expect(result.stdout).to.match(/To undo, deploy, then run: edms-ops restore \S+-pre-reset/);
    expect(await asDb("SELECT count(*) FROM pg_tables WHERE schemaname = 'public';")).to.equal("0");
    expect(await asDb("SELECT count(*) FROM foreign_data.keep;")).to.equal("1");
    // The stack's prefix is emptied but for its claim; another prefix of the bucket keeps its objects.
    expect(await bucketKeys(`${bucket}/${stack.prefix}`)).to.deep.equal([".edms-stack"]);
    expect(await bucketKeys("edms-media/other-stack")).to.deep.equal(["keep.bin"]);
    expect(
      await asDb(
        "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE NOT datistemplate;",
      ),
    ).to.equal("edms,postgres,records");
    const { error, hooks } = await stack.up();
    expect(error, error?.message).to.equal(undefined);
    expect(hooks.map((h) => h.name)).to.include.members(["migrate", "bootstrap"]);
    expect(
      await stack.psql("SELECT string_agg(username, ',' ORDER BY username) FROM auth_user;"),
    ).to.equal("admin,records-office");
    expect(await stack.psql("SELECT count(*) FROM documents_document;")).to.equal("0");
    const health = await stack.ops(["health"]);
    expect(health.code, health.stdout + health.stderr).to.equal(0);
  });
});
