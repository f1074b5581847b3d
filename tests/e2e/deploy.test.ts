/** First deploy, update that keeps every byte, a failed migration that keeps the old release, secrets. */
import { expect } from "chai";
import { createHash } from "crypto";
import { docker, removeStaleCreated } from "../../ops/engine/docker";
import { dockerRunArgs } from "../../ops/engine/dockerRun";
import { CONFINEMENT } from "../../model/hardening";
import { projectRefreshesAlways } from "../harness/applier";
import { addressOn, networksOf, reachFrom, reachFromNetwork } from "../harness/reach";
import { request, setCookie } from "../harness/http";
import {
  applier,
  BACKUP_IMAGE,
  TestStack,
  PRODUCTION_UPDATE_HOOKS,
  TEST_HOST,
} from "../harness/stack";
import { WEB_INTERNAL_PORT } from "../../model/proxy";

describe("e2e: deploy and update on a production stack", function () {
  const stack = new TestStack("prod", "production");
  let beforeUpdate: Record<string, string>;
  let superuserRow: string;
  let webBeforeBroken: string;
  const hookOutputs: string[] = [];

  before(() => stack.destroy());
  after(() => stack.destroy());

  it("1. first deploy on an empty host: schema, superuser, fixtures, health green, one deployment", async function () {
    const { error, hooks } = await stack.up("1.0.0");
    expect(error, error?.message).to.equal(undefined);
    hooks.forEach((h) => hookOutputs.push(h.stdout, h.stderr));
    expect(hooks.map((h) => h.name)).to.deep.equal([
      "backupInit",
      "preDeployBackup",
      "preDeployDrill",
      "migrate",
      "bootstrap",
      "healthGate",
      "recordDeployment",
    ]);
    expect(hooks[1].stderr).to.match(/nothing to back up/);
    expect(hooks[2].stderr).to.match(/nothing to drill/);
    expect(
      await stack.psql("SELECT count(*) FROM django_migrations WHERE app = 'documents';"),
    ).to.equal("1");
    expect(await stack.psql("SELECT username FROM auth_user WHERE is_superuser;")).to.equal(
      "admin",
    );
    expect(await stack.psql("SELECT count(*) FROM systemsettings_systemsetting;")).to.equal("3");
    expect(await stack.psql("SELECT name FROM auth_group ORDER BY name;")).to.equal(
      "Editors\nReaders",
    );
    const health = await stack.ops(["health", "--json"]);
    expect(health.code, health.stderr).to.equal(0);
    expect(JSON.parse(health.stdout).healthy).to.equal(true);
    const status = JSON.parse((await stack.ops(["status", "--json"])).stdout);
    expect(status).to.deep.include({
      environment: "production",
      runningVersion: "1.0.0",
      users: 2,
      documents: 0,
    });
    expect(status.deployments).to.have.length(1);
    // Deployment checks pass, except the four HTTPS-only ones the plain-HTTP test setup silences (settings.py).
    const check = await docker(
      [
        "exec",
        stack.container("web"),
        "python3",
        "manage.py",
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
      ],
      { allowFailure: true },
    );
    expect(check.code, check.stdout + check.stderr).to.equal(0);
    superuserRow = await stack.psql(
      "SELECT id, password, date_joined FROM auth_user WHERE username = 'admin';",
    );
  });

  it("1b. Django's SECRET_KEY, drawn with special characters, reaches web and worker unchanged", async function () {
    const key = applier.state(stack.name).random["edms-secrets-django-secret-key"];
    expect(key).to.have.length(64);
    // The program's overrideSpecial set; 64 draws from 86 characters all missing it is a ~1e-9 event.
    expect(key).to.match(/[!#%()*+\-.:;<=>?@[\]^_{|}~]/);
    const digest = createHash("sha256").update(key).digest("hex");
    const seen = (role: "web" | "worker") =>
      docker(["exec", "-i", stack.container(role), "python3", "manage.py", "shell"], {
        input:
          "import hashlib\nfrom django.conf import settings\n" +
          "print(hashlib.sha256(settings.SECRET_KEY.encode()).hexdigest())\n",
      }).then((r) => r.stdout.trim());
    expect(await seen("web")).to.equal(digest);
    expect(await seen("worker")).to.equal(digest);
  });

  /** The repository's key count, the hint, the hinted key's scrypt cost and whether it alone opens it. */
  const keyFacts = async () =>
    (
      await docker(
        dockerRunArgs({
          image: BACKUP_IMAGE,
          entrypoint: "sh",
          args: [
            "-euc",
            `hint=$(cat /backups/.restic-key-hint); ls /backups/restic/keys | wc -l; echo "$hint"
            grep -o '"N":[0-9]*,"r":[0-9]*,"p":[0-9]*' "/backups/restic/keys/$hint"
            mkdir -p /tmp/alone/keys; cp /backups/restic/config /tmp/alone/; cp "/backups/restic/keys/$hint" /tmp/alone/keys/
            restic --no-cache -r /tmp/alone --password-file /backups/.keys/restic-password cat config | grep -c '"version": 2'`,
          ],
          remove: true,
          network: "none",
          mounts: [{ volume: stack.backupsVolume, path: "/backups" }],
        }),
      )
    ).stdout
      .trim()
      .split("\n");
  let firstKeys: string[] = [];

  it("1c. the repository got a key of scrypt's default cost beside restic's calibrated one: restic opens the repository with it alone, and the hint names it", async function () {
    firstKeys = await keyFacts();
    expect(firstKeys).to.have.length(4);
    expect([firstKeys[0], ...firstKeys.slice(2)]).to.deep.equal([
      "2",
      '"N":16384,"r":8,"p":1',
      "1",
    ]);
    expect(firstKeys[1]).to.match(/^[0-9a-f]{64}$/);
  });

  it("2. update 1.0.0 → 2.0.0 with data: backup first, migrations applied, every row and media file identical", async function () {
    await stack.seed("a");
    expect(
      await stack.psql("SELECT count(*) FROM documents_document WHERE checksum <> '';"),
    ).to.equal("1");
    beforeUpdate = await stack.fingerprint();
    const { error, hooks } = await stack.up("2.0.0");
    expect(error, error?.message).to.equal(undefined);
    hooks.forEach((h) => hookOutputs.push(h.stdout, h.stderr));
    // bootstrap is keyed on the postgres volume: not run again.
    expect(hooks.map((h) => h.name)).to.deep.equal(PRODUCTION_UPDATE_HOOKS);

    const backups = JSON.parse((await stack.ops(["backups", "list", "--json"])).stdout).complete;
    expect(backups).to.have.length(1);
    expect(backups[0]).to.deep.include({
      reason: "pre-deploy",
      release: "1.0.0",
      target: "2.0.0",
      stack: stack.name,
    });
    // One snapshot holds the dump, the manifest, the deployment history and the three seeded media files.
    const files = (await stack.restic(["ls", "--json", backups[0].snapshot]))
      .split("\n")
      .map((l) => JSON.parse(l))
      .filter((n) => n.type === "file")
      .map((n) => n.path as string)
      .sort();
    expect(files.filter((f) => f.startsWith("/edms/database/"))).to.deep.equal([
      "/edms/database/db.dump",
      "/edms/database/history.jsonl",
      "/edms/database/manifest.json",
    ]);
    expect(files.filter((f) => f.startsWith("/edms/media/"))).to.have.length(3);
    const verify = await stack.ops(["verify", backups[0].id]);
    expect(verify.code, verify.stderr).to.equal(0);

    expect(
      await stack.psql("SELECT max(name) FROM django_migrations WHERE app = 'documents';"),
    ).to.equal("0002_document_slug");
    expect(await stack.fingerprint()).to.deep.equal(beforeUpdate);
    expect(await stack.psql("SELECT count(*) FROM documents_document WHERE slug = '';")).to.equal(
      "0",
    );
    expect(await stack.psql("SELECT slug FROM documents_document ORDER BY id LIMIT 1;")).to.equal(
      "contract-a-0",
    );
    expect(
      await stack.psql("SELECT id, password, date_joined FROM auth_user WHERE username = 'admin';"),
    ).to.equal(superuserRow);
    expect(
      await stack.psql("SELECT value FROM systemsettings_systemsetting WHERE key = 'site_name';"),
    ).to.equal("Operator-edited a");
    const status = JSON.parse((await stack.ops(["status", "--json"])).stdout);
    expect(status.runningVersion).to.equal("2.0.0");
    expect(status.deployments.map((d: { version: string }) => d.version)).to.deep.equal([
      "1.0.0",
      "2.0.0",
    ]);
    expect(status.deployments[1].preDeployBackup).to.equal(backups[0].id);
  });

  it("2b. `pulumi up` reads the state, not Docker: a stopped or removed worker stays so without refresh; the project's `refresh: always` starts the stopped one in place and creates the removed one again", async function () {
    const running = async () => {
      const inspected = await docker(
        ["inspect", "-f", "{{.State.Running}}", stack.container("worker")],
        { allowFailure: true },
      );
      return inspected.code === 0 ? inspected.stdout.trim() : "missing";
    };
    const workerBefore = await stack.containerId("worker");
    await docker(["stop", "-t", "60", stack.container("worker")]);
    const plain = await stack.up(undefined, { refresh: false });
    expect(plain.error, plain.error?.message).to.equal(undefined);
    expect(plain.hooks.map((h) => h.name)).to.deep.equal([]);
    expect(await running()).to.equal("false");
    expect(await stack.containerId("worker")).to.equal(workerBefore);

    expect(projectRefreshesAlways()).to.equal(true);
    const refreshed = await stack.up(); // as `pulumi up` runs with Pulumi.yaml's options
    expect(refreshed.error, refreshed.error?.message).to.equal(undefined);
    expect(await running()).to.equal("true");
    // The provider's update starts the same container (must_run false → true): no new id, so no hook keyed
    // on the worker runs, the health gate included.
    expect(await stack.containerId("worker")).to.equal(workerBefore);
    expect(refreshed.hooks.map((h) => h.name)).to.deep.equal([]);

    await docker(["stop", "-t", "60", stack.container("worker")]);
    await docker(["rm", stack.container("worker")]);
    const gone = await stack.up(undefined, { refresh: false });
    expect(gone.error, gone.error?.message).to.equal(undefined);
    expect(gone.hooks.map((h) => h.name)).to.deep.equal([]);
    expect(await running()).to.equal("missing");

    const recreated = await stack.up();
    expect(recreated.error, recreated.error?.message).to.equal(undefined);
    expect(await running()).to.equal("true");
    expect(await stack.containerId("worker")).not.to.equal(workerBefore);
    // A new worker container: the health gate (keyed on it) runs again; nothing else does.
    expect(recreated.hooks.map((h) => h.name)).to.deep.equal(["healthGate"]);
  });

  it("3. update to a release whose migration fails: deploy stops, 2.0.0 keeps serving, no data changed", async function () {
    webBeforeBroken = await stack.containerId("web");
    const workerBefore = await stack.containerId("worker");
    const before = await stack.fingerprint();
    // The drill rehearses the release's migrate on the restored copy, so it fails there, before the
    // migrate hook touches production (staging, with no drill, fails in migrate itself: rollback tests).
    const { error, hooks } = await stack.up("3.0.0-broken");
    hooks.forEach((h) => hookOutputs.push(h.stdout, h.stderr));
    expect(error?.message).to.match(/hook preDeployDrill failed/);
    expect(error?.message).to.match(/migration rehearsal \(3\.0\.0-broken\)/);
    expect(hooks.map((h) => h.name)).to.deep.equal(["preDeployBackup", "preDeployDrill"]);
    expect(await stack.containerId("web")).to.equal(webBeforeBroken);
    expect(await stack.containerId("worker")).to.equal(workerBefore);
    // Still the 2.0.0 image, not the broken release's (both exist on the host).
    const imageId = async (ref: string) =>
      (await docker(["image", "inspect", "-f", "{{.Id}}", ref])).stdout.trim();
    const webImage = (
      await docker(["inspect", "-f", "{{.Image}}", stack.container("web")])
    ).stdout.trim();
    expect(webImage).to.equal(await imageId("edms-sample/backend:2.0.0"));
    expect(webImage).not.to.equal(await imageId("edms-sample/backend:3.0.0-broken"));
    const health = await stack.ops(["health", "--json"]);
    expect(health.code, health.stderr).to.equal(0);
    expect(JSON.parse((await stack.ops(["status", "--json"])).stdout).runningVersion).to.equal(
      "2.0.0",
    );
    expect(await stack.fingerprint()).to.deep.equal(before);
    expect(
      await stack.psql(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'documents_document' AND column_name = 'pages';",
      ),
    ).to.equal("0");
    stack.set("edms:version", "2.0.0"); // what the operator (or rollback) sets back
  });

  it("3b. restore of a 1.0.0 backup while 2.0.0 runs, then deploy 1.0.0: its pre-deploy backup is labelled 1.0.0 and its drill passes", async function () {
    const listed = async () =>
      JSON.parse((await stack.ops(["backups", "list", "--json"])).stdout).complete as {
        id: string;
        reason: string;
        release: string | null;
        target?: string;
      }[];
    const [ofV1] = (await listed()).filter(
      (b) => b.reason === "pre-deploy" && b.target === "2.0.0",
    );
    expect(ofV1, "the pre-deploy backup of test 2").to.deep.include({ release: "1.0.0" });
    const restored = await stack.ops(["restore", ofV1.id, "--confirm", "production"]);
    expect(restored.code, restored.stderr).to.equal(0);
    expect(restored.stdout).to.contain("pulumi config set edms:version 1.0.0");
    expect(await stack.documentsSchema()).to.deep.equal({ migration: "0001_initial", slug: false });
    // The undo backup holds 2.0.0's schema: labelled 2.0.0 (both webs are still 2.0.0's here).
    const undo = (await listed()).find((b) => b.reason === "pre-restore");
    expect(undo).to.deep.include({ release: "2.0.0" });

    const { error, hooks } = await stack.up("1.0.0");
    hooks.forEach((h) => hookOutputs.push(h.stdout, h.stderr));
    expect(error, error?.message).to.equal(undefined);
    expect(hooks.map((h) => h.name)).to.deep.equal(PRODUCTION_UPDATE_HOOKS);
    // The stopped web was 2.0.0's; the schema is 1.0.0's, and so are the label and the drill's release.
    const preDeploy = (await listed()).filter(
      (b) => b.reason === "pre-deploy" && b.target === "1.0.0",
    );
    expect(preDeploy).to.have.length(1);
    expect(preDeploy[0]).to.deep.include({ release: "1.0.0" });
    const drill = hooks.find((h) => h.name === "preDeployDrill");
    expect(drill?.stdout).to.match(/Drill of \S+ passed in [\d.]+s \(release 1\.0\.0\)/);
    expect(await stack.fingerprint()).to.deep.equal(beforeUpdate);
    const status = JSON.parse((await stack.ops(["status", "--json"])).stdout);
    expect(status.runningVersion).to.equal("1.0.0");
    expect((await stack.ops(["health"])).code).to.equal(0);
    // Every backup command since checked the hinted key (it opens with the stored password): none added.
    expect(await keyFacts()).to.deep.equal(firstKeys);
  });

  it("3c. a release whose migration fails only on production's data is stopped by the drill's rehearsal: schema and data untouched", async function () {
    await stack.seed("dup", 2, 512);
    await stack.seed("dup", 2, 512); // two documents per title: 3.1.0-unique's constraint cannot hold
    const web = await stack.containerId("web");
    const before = await stack.fingerprint();
    const running = JSON.parse((await stack.ops(["status", "--json"])).stdout).runningVersion;
    const { error, hooks } = await stack.up("3.1.0-unique");
    stack.set("edms:version", running);
    hooks.forEach((h) => hookOutputs.push(h.stdout, h.stderr));
    expect(error?.message).to.match(/hook preDeployDrill failed/);
    expect(hooks.map((h) => h.name)).to.deep.equal(["preDeployBackup", "preDeployDrill"]);
    const drill = hooks.find((h) => h.name === "preDeployDrill")!;
    expect(drill.stdout + drill.stderr).to.match(
      /FAIL migration rehearsal \(3\.1\.0-unique\) \([\d.]+s\): release 3\.1\.0-unique's `migrate` fails on this data/,
    );
    // The backup itself is good: its record passes, so alerts and "newest good backup" still count it.
    expect(drill.stderr).to.match(
      /passed its drill, but the release to deploy does not migrate its data/,
    );
    const drills = await stack.onVolume(
      stack.backupsVolume,
      "cat $(ls /v/drills/*.json | tail -1)",
    );
    expect(JSON.parse(drills)).to.deep.include({ ok: true });
    expect(JSON.parse(drills).rehearsal).to.deep.include({ ok: false });
    expect(await stack.containerId("web")).to.equal(web);
    expect(await stack.fingerprint()).to.deep.equal(before);
    expect(
      await stack.psql(
        "SELECT count(*) FROM django_migrations WHERE app = 'documents' AND name = '0003_unique_title';",
      ),
    ).to.equal("0");
  });

  it("4. no secret in docker inspect of any container, nor in any hook's output", async function () {
    const secrets = applier.secrets(stack.name);
    // postgres (superuser), the application and backup roles, redis, Django key, superuser, backup repositories
    expect(secrets).to.have.length(7);
    const ids = (await docker(["ps", "-aq", "--filter", `label=edms.stack=${stack.name}`])).stdout
      .split("\n")
      .filter(Boolean);
    expect(ids.length).to.be.at.least(4);
    const inspected = (await docker(["inspect", ...ids])).stdout;
    const outputs = hookOutputs.join("\n");
    expect(outputs.length).to.be.above(100);
    for (const secret of secrets) {
      expect(secret.length).to.be.at.least(24);
      expect(inspected.includes(secret), "secret in docker inspect").to.equal(false);
      expect(outputs.includes(secret), "secret in hook output").to.equal(false);
    }
    expect(inspected).to.contain("POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password");
  });

  it("4b. a one-off container a killed edms-ops left created but never started is removed once it is 10 minutes old", async function () {
    const name = `${stack.prefix}-ops-never-started`;
    await docker(["rm", "-f", name], { allowFailure: true });
    const labels = ["--label", `edms.stack=${stack.name}`, "--label", "edms.role=ops"];
    await docker(["create", "--name", name, ...labels, "edms-test/postgres:15", "true"]);
    const exists = async () =>
      (await docker(["ps", "-aq", "--filter", `name=^${name}$`])).stdout.trim() !== "";
    try {
      const created = Date.parse(
        (await docker(["inspect", "-f", "{{.Created}}", name])).stdout.trim(),
      );
      const at = (minutes: number) => async () =>
        new Date(created + minutes * 60_000).toISOString();
      await removeStaleCreated(stack.name, "ops", at(9), 10);
      expect(await exists(), "younger than 10 minutes: kept").to.equal(true);
      await removeStaleCreated(stack.name, "ops", at(11), 10);
      expect(await exists(), "older: removed").to.equal(false);
    } finally {
      await docker(["rm", "-f", name], { allowFailure: true });
    }
  });

  it("5. every container runs confined: no new privileges, capabilities dropped, memory limit, rotated logs", async function () {
    const ids = (await docker(["ps", "-q", "--filter", `label=edms.stack=${stack.name}`])).stdout
      .split("\n")
      .filter(Boolean);
    const containers = JSON.parse((await docker(["inspect", ...ids])).stdout) as {
      Name: string;
      Config: { Labels: Record<string, string> };
      HostConfig: Record<string, any>;
    }[];
    const roles = containers.map((c) => c.Config.Labels["edms.role"]).sort();
    // This stack runs without the proxy, with the scheduler.
    expect(roles).to.include.members(["postgres", "redis", "web", "worker", "scheduler"]);
    for (const { Name, HostConfig: host } of containers) {
      expect(host.SecurityOpt, Name).to.deep.equal(["no-new-privileges"]);
      expect(host.CapDrop, Name).to.deep.equal(["ALL"]);
      expect(host.Privileged, Name).to.equal(false);
      expect(host.Memory, Name).to.be.above(0);
      expect(host.MemorySwap, Name).to.equal(host.Memory);
      expect(host.LogConfig, Name).to.deep.equal({
        Type: "json-file",
        Config: { "max-size": "10m", "max-file": "3" },
      });
    }
    // A read-only root where the table says so; none of the stack's long-running containers since Redis
    // gets its config uploaded, as the provider uploads into `/`.
    for (const { Name, Config, HostConfig: host } of containers) {
      const role = Config.Labels["edms.role"] as keyof typeof CONFINEMENT;
      expect(host.ReadonlyRootfs, Name).to.equal(CONFINEMENT[role].readOnly);
    }
    // What the kernel says of the running processes: no capability left to the app, no new privileges.
    for (const role of ["web", "worker", "redis", "postgres"] as const) {
      const status = (await docker(["exec", stack.container(role), "cat", "/proc/1/status"]))
        .stdout;
      expect(status, role).to.match(/^NoNewPrivs:\s+1$/m);
      expect(status, role).to.match(/^CapEff:\s+0+$/m);
    }
  });

  it("5b. networks: Redis refuses a client without its password while the app and a celery task work; nothing on the front network reaches PostgreSQL or Redis, web does", async function () {
    const n = stack.names;
    const redisPassword = applier.state(stack.name).random["edms-secrets-redis-password"];
    expect(redisPassword).to.have.length(32);
    // Without the password: refused, from inside the redis container and from web over the network.
    const anonymous = await docker(["exec", stack.container("redis"), "redis-cli", "ping"], {
      allowFailure: true,
    });
    expect(anonymous.stdout + anonymous.stderr).to.match(/NOAUTH/);
    const fromWeb = await docker(
      [
        "exec",
        stack.container("web"),
        "python3",
        "-c",
        "import redis\nprint(redis.Redis(host='redis', socket_timeout=3).ping())",
      ],
      { allowFailure: true },
    );
    expect(fromWeb.code).not.to.equal(0);
    expect(fromWeb.stderr).to.match(/AuthenticationError|NOAUTH|Authentication required/);
    // With it, the app works: health (its own Redis check included) and a task through the broker.
    const health = await stack.ops(["health", "--json"]);
    expect(health.code, health.stderr).to.equal(0);
    const checks = JSON.parse(health.stdout).checks as { name: string; ok: boolean }[];
    // Both: edms-ops' `redis-cli ping` in the redis container and the app's own check in /health/.
    expect(checks.filter((c) => c.name === "redis")).to.deep.equal([
      { name: "redis", ok: true, detail: "ok" },
      { name: "redis", ok: true, detail: "ok" },
    ]);
    const checksum = await docker(
      ["exec", "-i", stack.container("web"), "python3", "manage.py", "shell"],
      {
        input:
          "from documents.models import Document\nfrom documents.tasks import compute_checksum\n" +
          "print(compute_checksum.delay(Document.objects.first().id).get(timeout=60))\n",
      },
    );
    expect(checksum.stdout.trim()).to.match(/^[0-9a-f]{64}$/);
    // Who is on which network: the data network is internal; the datastores are on it only.
    const internal = async (network: string) =>
      (await docker(["network", "inspect", "-f", "{{.Internal}}", network])).stdout.trim();
    expect(await internal(n.dataNetwork)).to.equal("true");
    expect(await internal(n.frontNetwork)).to.equal("false");
    expect(await networksOf(stack.container("postgres"))).to.deep.equal([n.dataNetwork]);
    expect(await networksOf(stack.container("redis"))).to.deep.equal([n.dataNetwork]);
    expect(await networksOf(stack.container("worker"))).to.deep.equal([n.dataNetwork]);
    expect(await networksOf(stack.container("web"))).to.deep.equal(
      [n.dataNetwork, n.frontNetwork].sort(),
    );
    // web reaches both by name (the control: the probe can connect) ...
    for (const [host, port] of [
      ["postgres", 5432],
      ["redis", 6379],
    ] as const) {
      const reached = await reachFrom(stack.container("web"), host, port);
      expect(reached.ok, `web → ${host}: ${reached.detail}`).to.equal(true);
    }
    // ... a container on the front network only (where the proxy sits) reaches neither, by name or address.
    const targets = [
      ["postgres", 5432],
      ["redis", 6379],
      [await addressOn(stack.container("postgres"), n.dataNetwork), 5432],
      [await addressOn(stack.container("redis"), n.dataNetwork), 6379],
    ] as const;
    expect(targets[2][0]).to.match(/^\d+\.\d+\.\d+\.\d+$/);
    for (const [host, port] of targets) {
      const reached = await reachFromNetwork(
        n.frontNetwork,
        "edms-sample/backend:1.0.0",
        [`edms.stack=${stack.name}`],
        host,
        port,
      );
      expect(reached.ok, `front → ${host}:${port}`).to.equal(false);
      expect(reached.detail, `front → ${host}:${port}`).to.match(
        /Name or service not known|Temporary failure in name resolution|timed out|unreachable|No route/i,
      );
    }
    // The password reached no log.
    for (const role of ["redis", "web", "worker"] as const) {
      const logs = await docker(["logs", stack.container(role)]);
      expect((logs.stdout + logs.stderr).includes(redisPassword), role).to.equal(false);
    }
  });

  it("5c. HTTPS ends upstream: the port binds to 127.0.0.1 only; the app answers its allowed host with secure cookies and refuses any other; health probes pass", async function () {
    const bindings = JSON.parse(
      (await docker(["inspect", "-f", "{{json .HostConfig.PortBindings}}", stack.container("web")]))
        .stdout,
    ) as Record<string, { HostIp: string; HostPort: string }[]>;
    expect(bindings).to.deep.equal({
      [`${WEB_INTERNAL_PORT}/tcp`]: [{ HostIp: "127.0.0.1", HostPort: String(stack.port) }],
    });
    const url = `http://127.0.0.1:${stack.port}/admin/login/`;
    // As the TLS-terminating upstream forwards it: its Host, X-Forwarded-Proto https.
    const upstream = await request(url, {
      host: TEST_HOST,
      headers: { "X-Forwarded-Proto": "https" },
    });
    expect(upstream.status, upstream.body.slice(0, 200)).to.equal(200);
    expect(setCookie(upstream, "csrftoken")).to.match(/; Secure/i);
    expect(upstream.headers["strict-transport-security"]).to.match(/max-age=31536000/);
    // The app itself never redirects (the upstream does): no loop behind an upstream without the header.
    const plain = await request(url, { host: TEST_HOST });
    expect(plain.status).to.equal(200);
    expect(setCookie(plain, "csrftoken")).to.match(/; Secure/i);
    for (const host of ["evil.example", "127.0.0.1", `${stack.prefix}-web`]) {
      const refused = await request(url, { host, headers: { "X-Forwarded-Proto": "https" } });
      expect(refused.status, host).to.equal(400);
    }
    // edms-ops' probe sends the allowed host, so the app answers it as it answers users.
    const health = await stack.ops(["health", "--json"]);
    expect(health.code, health.stdout + health.stderr).to.equal(0);
  });
  it("5d. web and worker connect as the application role: not a superuser, rows only; an operator's migrate gives back rights a database lost", async function () {
    const asApp = async (container: string, sql: string) =>
      docker(
        [
          "exec",
          "-i",
          container,
          "python3",
          "manage.py",
          "shell",
          "-c",
          "import sys\nfrom django.db import connection\nc = connection.cursor()\n" +
            "try:\n    c.execute(sys.stdin.read())\n    print(c.fetchall())\n" +
            "except Exception as e:\n    print('REFUSED', type(e).__name__, e)",
        ],
        { input: sql },
      );
    for (const role of ["web", "worker"] as const) {
      const who = await asApp(
        stack.container(role),
        "SELECT current_user, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user",
      );
      expect(who.stdout.trim(), role).to.equal("[('edms_app', False, False, False)]");
    }
    const web = stack.container("web");
    // What an SQL injection would try: a shell, the server's files, the schema.
    for (const [sql, refusal] of [
      ["COPY (SELECT 1) TO PROGRAM 'id'", /permission denied|must be superuser/],
      ["SELECT pg_read_file('/etc/passwd')", /permission denied/],
      ["CREATE TABLE injected (i int)", /permission denied for schema public/],
      ["DROP TABLE documents_document", /must be owner/],
      ["ALTER ROLE edms_app SUPERUSER", /permission denied|must be superuser/],
    ] as const) {
      const tried = await asApp(web, sql);
      expect(tried.stdout, sql).to.match(/^REFUSED /);
      expect(tried.stdout, sql).to.match(refusal);
    }
    // Every table of the schema (those of 2.0.0's migrations too) is readable and writable by it.
    const superuser = (sql: string) =>
      docker(
        [
          "exec",
          "-i",
          stack.container("postgres"),
          "psql",
          "-U",
          "edms",
          "-d",
          "edms",
          "-XAt",
          "-v",
          "ON_ERROR_STOP=1",
        ],
        {
          input: sql,
        },
      );
    const lacking =
      "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND NOT has_table_privilege('edms_app', format('%I.%I', schemaname, tablename), 'SELECT, INSERT, UPDATE, DELETE');";
    expect(
      (
        await superuser("SELECT count(*) FROM pg_tables WHERE schemaname = 'public';")
      ).stdout.trim(),
    ).to.match(/^[1-9]\d+$/);
    expect((await superuser(lacking)).stdout.trim()).to.equal("0");
    // A database that lost the rights (as one restored from a backup older than the role): an operator's
    // migrate, which takes the superuser's password from the postgres container, gives them back.
    await superuser(
      "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM edms_app; REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM edms_app;",
    );
    expect((await asApp(web, "SELECT count(*) FROM documents_document")).stdout).to.match(
      /^REFUSED .*permission denied/,
    );
    const migrated = await stack.ops(["migrate"]);
    expect(migrated.code, migrated.stderr).to.equal(0);
    expect((await superuser(lacking)).stdout.trim()).to.equal("0");
    expect((await asApp(web, "SELECT count(*) FROM documents_document")).stdout).to.match(
      /^\[\(\d+,\)\]$/m,
    );
    const health = await stack.ops(["health"]);
    expect(health.code, health.stdout + health.stderr).to.equal(0);
  });
});
