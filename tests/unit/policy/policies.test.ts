import {
  PolicyResource,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationArgs,
  StackValidationPolicy,
} from "@pulumi/policy";
import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { RecordedResource, REPO_ROOT, runProgram } from "../../harness/mocks";
import { readStackConfig } from "../../../model/stackFile";
import { HOOK_CONTRACTS, HOOKS, OPS_ENTRY } from "../../../model/hooks";
import {
  appNotSuperuser,
  backupBeforeDeploy,
  exposesEngine,
  noEngineSocket,
  noPublishedDatastores,
  noSecretInEnv,
  policies,
  productionDataProtected,
  productionHttps,
  productionImagesByDigest,
  productionScheduledBackups,
  segmentedNetworks,
  labelsOf,
} from "../../../policy/policies";

type Props = Record<string, any>;

const BACKUP_ID = "2026-11-25T14-00-00Z-pre-deploy";
const commandLine = (argv: string[]) =>
  ["node", OPS_ENTRY, ...argv, "--stack", "production"].join(" ");

function resourceArgs(type: string, props: Props, protect = false): ResourceValidationArgs {
  return {
    type,
    props,
    urn: `urn:pulumi:test::edms::${type}::${props.name ?? "r"}`,
    name: props.name ?? "r",
    opts: {
      protect,
      ignoreChanges: [],
      aliases: [],
      customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
      additionalSecretOutputs: [],
    },
    stackTags: new Map(),
    isType: () => false,
    asType: () => undefined,
    getConfig: <T extends object>() => ({}) as T,
    notApplicable: () => {
      throw new Error("not applicable");
    },
  };
}

async function violations(
  policy: ResourceValidationPolicy,
  args: ResourceValidationArgs,
): Promise<string[]> {
  const found: string[] = [];
  const validate = policy.validateResource as (
    a: ResourceValidationArgs,
    r: (m: string) => void,
  ) => Promise<void> | void;
  await validate(args, (message) => found.push(message));
  return found;
}

/** The pack's view of a program's recorded resources: fresh copies, so a test may break one. */
function asPolicyResources(recorded: readonly RecordedResource[]): PolicyResource[] {
  return recorded.map(
    (r) =>
      ({
        ...resourceArgs(r.type, JSON.parse(JSON.stringify(r.inputs)) as Props, r.protect),
        name: r.name,
        dependencies: [],
        propertyDependencies: {},
      }) as unknown as PolicyResource,
  );
}

/** What a stack policy reports on `resources`. */
async function stackViolations(
  policy: StackValidationPolicy,
  resources: PolicyResource[],
): Promise<string[]> {
  const found: string[] = [];
  await (policy.validateStack as (a: StackValidationArgs, r: (m: string) => void) => void)(
    {
      resources,
      stackTags: new Map(),
      getConfig: <T extends object>() => ({}) as T,
      notApplicable: () => undefined as never,
    },
    (m) => found.push(m),
  );
  return found;
}

const labels = (map: Record<string, string>) =>
  Object.entries(map).map(([label, value]) => ({ label, value }));

describe("policy production-data-protected", function () {
  const happyPathArgs = () =>
    resourceArgs(
      "docker:index/volume:Volume",
      {
        name: "edms_postgres_data",
        labels: labels({ "edms.environment": "production", "edms.data": "persistent" }),
      },
      true,
    );

  it("passes a protected production data volume", async function () {
    expect(await violations(productionDataProtected, happyPathArgs())).to.deep.equal([]);
  });
  it("reports an unprotected production data volume", async function () {
    const args = { ...happyPathArgs(), opts: { ...happyPathArgs().opts, protect: false } };
    expect((await violations(productionDataProtected, args)).join()).to.match(
      /Volume edms_postgres_data holds persistent production data but is not protected/,
    );
  });
  it("leaves the production cache volume and staging volumes alone", async function () {
    const cache = resourceArgs("docker:index/volume:Volume", {
      name: "r",
      labels: labels({ "edms.environment": "production", "edms.data": "cache" }),
    });
    const staging = resourceArgs("docker:index/volume:Volume", {
      name: "s",
      labels: labels({ "edms.environment": "staging", "edms.data": "persistent" }),
    });
    expect(await violations(productionDataProtected, cache)).to.deep.equal([]);
    expect(await violations(productionDataProtected, staging)).to.deep.equal([]);
  });
});

describe("policy no-secret-in-env", function () {
  const happyPathArgs = () =>
    resourceArgs("docker:index/container:Container", {
      name: "edms-web",
      envs: [
        "POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password",
        "DJANGO_SECRET_KEY_FILE=/run/secrets/k",
        "POSTGRES_USER=edms",
      ],
    });

  it("passes *_FILE variables", async function () {
    expect(await violations(noSecretInEnv, happyPathArgs())).to.deep.equal([]);
  });
  for (const env of [
    "POSTGRES_PASSWORD=hunter2",
    "DJANGO_SECRET_KEY=abc",
    "API_TOKEN=t",
    "AWS_SECRET_ACCESS_KEY=x",
    "REDIS_PASS=p",
  ]) {
    it(`reports ${env.split("=")[0]} with a value`, async function () {
      const args = happyPathArgs();
      args.props.envs.push(env);
      expect((await violations(noSecretInEnv, args)).join()).to.contain(
        `sets ${env.split("=")[0]} in its environment`,
      );
    });
  }
});

describe("policy app-not-superuser", function () {
  const web = (envs: string[], files: string[]) =>
    resourceArgs("docker:index/container:Container", {
      name: "edms-web",
      labels: labels({ "edms.role": "web" }),
      envs,
      uploads: files.map((file) => ({ file, content: "x" })),
    });

  it("passes web as the application role with its own password file", async function () {
    const args = web(
      ["POSTGRES_USER=edms_app", "POSTGRES_PASSWORD_FILE=/run/secrets/app_db_password"],
      ["/run/secrets/app_db_password", "/run/secrets/django_secret_key"],
    );
    expect(await violations(appNotSuperuser, args)).to.deep.equal([]);
  });
  it("reports web as the superuser, or a worker without a user, or holding the superuser's password", async function () {
    const asSuperuser = web(["POSTGRES_USER=edms"], ["/run/secrets/app_db_password"]);
    expect((await violations(appNotSuperuser, asSuperuser)).join()).to.match(
      /edms-web connects to PostgreSQL as edms, not as the application role edms_app/,
    );
    const worker = resourceArgs("docker:index/container:Container", {
      name: "edms-worker",
      labels: labels({ "edms.role": "worker" }),
      envs: [],
      uploads: [{ file: "/run/secrets/postgres_password", content: "x" }],
    });
    const found = (await violations(appNotSuperuser, worker)).join("\n");
    expect(found).to.match(/edms-worker connects to PostgreSQL as the image's default user/);
    expect(found).to.match(/holds the database superuser's password/);
  });
  it("leaves postgres and the one-off containers' images alone", async function () {
    const pg = resourceArgs("docker:index/container:Container", {
      name: "edms-postgres",
      labels: labels({ "edms.role": "postgres" }),
      envs: ["POSTGRES_USER=edms"],
      uploads: [{ file: "/run/secrets/postgres_password", content: "x" }],
    });
    expect(await violations(appNotSuperuser, pg)).to.deep.equal([]);
  });
});

describe("policy no-engine-socket", function () {
  const container = (props: Props) =>
    resourceArgs("docker:index/container:Container", {
      name: "edms-scheduler",
      labels: labels({ "edms.role": "scheduler" }),
      ...props,
    });

  it("knows a socket or a folder above it, however the path is written, from an ordinary host path", function () {
    for (const exposed of [
      "/var/run/docker.sock",
      "/run/docker.sock",
      "//var//run/",
      "/var/run",
      "/run",
      "/var",
      "/",
      "/run/user/1000/docker.sock",
      "/home/ci/.docker/run/docker.sock",
      "/run/containerd/containerd.sock",
      "/run/podman/podman.sock",
      "/run/podman",
      "/run/user/1000",
      "/var/run/docker",
      "/run/docker/containerd",
      "/srv/../var/run",
      "/srv/./../run/docker.sock",
      "/var/lib/../../run",
    ]) {
      expect(exposesEngine(exposed), exposed).to.equal(true);
    }
    for (const plain of ["/srv/drills", "/var/lib/edms", "/var/run-not", "/run/secrets", "/tmp"]) {
      expect(exposesEngine(plain), plain).to.equal(false);
    }
  });
  it("reports a named volume that binds an engine's folder (local driver, o=bind), and passes an ordinary one", async function () {
    const volume = (driverOpts: Record<string, string>) =>
      resourceArgs("docker:index/volume:Volume", { name: "edms-dev-sneaky", driverOpts });
    const bound = volume({ type: "none", o: "bind", device: "/srv/../var/run" });
    expect((await violations(noEngineSocket, bound)).join()).to.match(
      /Volume edms-dev-sneaky binds \/srv\/\.\.\/var\/run/,
    );
    expect(
      await violations(noEngineSocket, volume({ type: "none", o: "bind", device: "/srv/media" })),
    ).to.deep.equal([]);
    expect(await violations(noEngineSocket, volume({}))).to.deep.equal([]);
  });
  it("reports a container that mounts the socket as a volume or a bind mount, and passes named volumes", async function () {
    const viaVolume = container({
      volumes: [{ hostPath: "/var/run/docker.sock", containerPath: "/var/run/docker.sock" }],
    });
    expect((await violations(noEngineSocket, viaVolume)).join()).to.match(
      /edms-scheduler mounts \/var\/run\/docker.sock, which gives it the container engine's API/,
    );
    const viaFolder = container({
      mounts: [{ type: "bind", source: "/run", target: "/host-run" }],
    });
    expect(await violations(noEngineSocket, viaFolder)).to.have.length(1);
    const named = container({
      volumes: [{ volumeName: "edms_backups", containerPath: "/backups" }],
      mounts: [{ type: "volume", source: "run", target: "/run" }],
    });
    expect(await violations(noEngineSocket, named)).to.deep.equal([]);
  });
});

describe("policy no-published-datastores", function () {
  const happyPathArgs = () =>
    resourceArgs("docker:index/container:Container", {
      name: "edms-postgres",
      image: "postgres:16",
      labels: labels({ "edms.role": "postgres" }),
      ports: [],
    });

  it("passes an unpublished postgres and a published web", async function () {
    expect(await violations(noPublishedDatastores, happyPathArgs())).to.deep.equal([]);
    const web = resourceArgs("docker:index/container:Container", {
      name: "edms-web",
      image: "edms-sample/backend:2",
      labels: labels({ "edms.role": "web" }),
      ports: [{ internal: 8000 }],
    });
    expect(await violations(noPublishedDatastores, web)).to.deep.equal([]);
  });
  it("reports a published postgres port", async function () {
    const args = happyPathArgs();
    args.props.ports = [{ internal: 5432, external: 5432 }];
    expect((await violations(noPublishedDatastores, args)).join()).to.match(
      /edms-postgres \(postgres\) publishes ports/,
    );
  });
  it("reports publishAllPorts on a redis image without labels", async function () {
    const args = resourceArgs("docker:index/container:Container", {
      name: "cache",
      image: "redis:7",
      publishAllPorts: true,
    });
    expect((await violations(noPublishedDatastores, args)).join()).to.match(
      /cache \(redis:7\) publishes ports/,
    );
  });
});

describe("policy backup-before-deploy", function () {
  const resource = (
    type: string,
    name: string,
    props: Props = {},
    dependencies: PolicyResource[] = [],
  ): PolicyResource =>
    ({
      ...resourceArgs(type, { name, ...props }),
      name,
      dependencies,
      propertyDependencies: {},
    }) as unknown as PolicyResource;
  const happyPathArgs = (
    env = "production",
    withEdge = true,
    withDrill = true,
  ): StackValidationArgs => {
    const volume = resource("docker:index/volume:Volume", "edms-data-postgres", {
      labels: labels({ "edms.environment": env, "edms.data": "persistent" }),
    });
    const backup = resource("command:local:Command", HOOKS.preDeployBackup, {
      create: commandLine(HOOK_CONTRACTS.preDeployBackup.argv({ version: "2.0.0" })),
    });
    const drill = resource(
      "command:local:Command",
      HOOKS.preDeployDrill,
      { create: commandLine(HOOK_CONTRACTS.preDeployDrill.argv({ backupId: BACKUP_ID })) },
      withEdge ? [backup] : [],
    );
    const migrate = resource(
      "command:local:Command",
      "migrate",
      { create: "node ops/bin/edms-ops.js migrate" },
      withDrill ? [drill, volume] : withEdge ? [backup, volume] : [volume],
    );
    return {
      resources: [volume, backup, drill, migrate],
      stackTags: new Map(),
      getConfig: <T extends object>() => ({}) as T,
      notApplicable: () => undefined as never,
    };
  };
  const run = async (args: StackValidationArgs) => {
    const found: string[] = [];
    await (
      backupBeforeDeploy.validateStack as (a: StackValidationArgs, r: (m: string) => void) => void
    )(args, (m) => found.push(m));
    return found;
  };

  it("passes when migrate depends on the drill, and the drill on the backup hook", async function () {
    expect(await run(happyPathArgs())).to.deep.equal([]);
  });
  // The hooks by resource name (what the program keeps stable), not by what their command line looks like.
  const hook = (args: StackValidationArgs, name: string) =>
    args.resources.find((r) => r.name === name) as { name: string; props: Props };
  it("finds the hooks by name: the right names with other command lines still pass", async function () {
    const args = happyPathArgs();
    hook(args, HOOKS.preDeployBackup).props.create = "node ops/bin/edms-ops.js backup --json";
    hook(args, HOOKS.preDeployDrill).props.create = "node ops/bin/edms-ops.js drill latest";
    expect(await run(args)).to.deep.equal([]);
  });
  it("reports a renamed drill hook, though its command line is the drill's", async function () {
    const args = happyPathArgs();
    hook(args, HOOKS.preDeployDrill).name = "preDeployCheck";
    const found = await run(args);
    expect(found).to.have.length(2);
    expect(found[0]).to.match(/`migrate` hook must depend on the pre-deploy drill hook/);
  });
  it("reports a renamed backup hook, though its command line is the backup's", async function () {
    const args = happyPathArgs();
    hook(args, HOOKS.preDeployBackup).name = "backupBeforeDeploy";
    expect(await run(args)).to.deep.equal([
      "On production the `preDeployDrill` hook must depend on the pre-deploy backup hook `preDeployBackup`. Keep `edms:backup.beforeDeploy` true and the dependsOn edge in components/edms.ts.",
    ]);
  });
  it("reports a drill without the backup edge on production", async function () {
    expect(await run(happyPathArgs("production", false))).to.deep.equal([
      "On production the `preDeployDrill` hook must depend on the pre-deploy backup hook `preDeployBackup`. Keep `edms:backup.beforeDeploy` true and the dependsOn edge in components/edms.ts.",
    ]);
  });
  it("reports migrate straight after the backup, without the drill, on production", async function () {
    const found = await run(happyPathArgs("production", true, false));
    expect(found).to.have.length(1);
    expect(found[0]).to.match(/`migrate` hook must depend on the pre-deploy drill hook/);
  });
  it("reports a production stack without a migrate hook", async function () {
    const args = happyPathArgs();
    args.resources.pop();
    expect((await run(args)).join()).to.match(/has no `migrate` hook/);
  });
  it("does not apply to staging", async function () {
    expect(await run(happyPathArgs("staging", false))).to.deep.equal([]);
  });
});

describe("policy production-scheduled-backups", function () {
  const stackArgs = (env: string, scheduler?: Props): StackValidationArgs => ({
    resources: [
      resourceArgs("docker:index/volume:Volume", {
        name: "edms_postgres_data",
        labels: labels({ "edms.environment": env, "edms.data": "persistent" }),
      }),
      ...(scheduler
        ? [
            resourceArgs("docker:index/container:Container", {
              name: "edms-scheduler",
              labels: labels({ "edms.environment": env, "edms.role": "scheduler" }),
              ...scheduler,
            }),
          ]
        : []),
    ].map(
      (r) => ({ ...r, dependencies: [], propertyDependencies: {} }) as unknown as PolicyResource,
    ),
    stackTags: new Map(),
    getConfig: <T extends object>() => ({}) as T,
    notApplicable: () => undefined as never,
  });
  const happyPathArgs = () => stackArgs("production", { restart: "unless-stopped" });
  const run = async (args: StackValidationArgs) => {
    const found: string[] = [];
    await (
      productionScheduledBackups.validateStack as (
        a: StackValidationArgs,
        r: (m: string) => void,
      ) => void
    )(args, (m) => found.push(m));
    return found;
  };

  it("passes a production stack with a scheduler restarted with the engine", async function () {
    expect(await run(happyPathArgs())).to.deep.equal([]);
  });
  it("reports a production stack without a scheduler", async function () {
    expect((await run(stackArgs("production"))).join()).to.match(
      /Production stack has no scheduler container .* Keep `edms:backup.schedule` set/,
    );
  });
  it("reports a scheduler that would not come back after a reboot", async function () {
    expect((await run(stackArgs("production", { restart: "no" }))).join()).to.match(
      /has restart `no`: after a host reboot no backup would be taken/,
    );
  });
  it("does not apply to dev, where scheduled backups are off by default", async function () {
    expect(await run(stackArgs("dev"))).to.deep.equal([]);
  });
});

describe("policy segmented-networks", function () {
  const container = (role: string, ...networks: string[]) =>
    resourceArgs("docker:index/container:Container", {
      name: `edms-${role}`,
      labels: labels({ "edms.role": role }),
      ...(networks.length ? { networksAdvanced: networks.map((name) => ({ name })) } : {}),
    });
  const network = (name: string, internal: boolean) =>
    resourceArgs("docker:index/network:Network", { name, driver: "bridge", internal });
  const stackArgs = (resources: ResourceValidationArgs[]): StackValidationArgs => ({
    resources: resources.map(
      (r) => ({ ...r, dependencies: [], propertyDependencies: {} }) as unknown as PolicyResource,
    ),
    stackTags: new Map(),
    getConfig: <T extends object>() => ({}) as T,
    notApplicable: () => undefined as never,
  });
  const happyPath = () => [
    network("edms-front", false),
    network("edms-data", true),
    container("proxy", "edms-front"),
    container("web", "edms-front", "edms-data"),
    container("worker", "edms-data"),
    container("postgres", "edms-data"),
    container("redis", "edms-data"),
  ];
  const run = async (resources: ResourceValidationArgs[]) => {
    const found: string[] = [];
    await (
      segmentedNetworks.validateStack as (a: StackValidationArgs, r: (m: string) => void) => void
    )(stackArgs(resources), (m) => found.push(m));
    return found;
  };

  it("passes the proxy on the front network and the datastores on the internal one", async function () {
    expect(await run(happyPath())).to.deep.equal([]);
  });
  it("reports a data network that is not internal", async function () {
    const resources = happyPath();
    resources[1] = network("edms-data", false);
    expect((await run(resources)).join("\n")).to.match(
      /edms-postgres \(postgres\) is on network edms-data, which is not `internal`[^]*edms-redis/,
    );
  });
  it("reports the proxy on the datastores' network", async function () {
    const resources = happyPath();
    resources[2] = container("proxy", "edms-front", "edms-data");
    expect(await run(resources)).to.deep.equal([
      "The proxy edms-proxy is on network edms-data with PostgreSQL or Redis. Keep it on the front network only.",
    ]);
  });
  it("reports a datastore on the front network or on Docker's default bridge", async function () {
    const resources = happyPath();
    resources[5] = container("postgres", "edms-data", "edms-front");
    resources[6] = container("redis");
    const found = (await run(resources)).join("\n");
    expect(found).to.match(/edms-postgres \(postgres\) is on network edms-front/);
    expect(found).to.match(/edms-redis \(redis\) is on Docker's default bridge/);
    expect(found).to.match(/The proxy edms-proxy is on network edms-front/);
  });
});

/** Certificate and key files for a stack that terminates TLS at the proxy (the program reads them). */
function tlsOverrides(): Record<string, unknown> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "edms-policy-tls-"));
  fs.writeFileSync(
    path.join(dir, "edms.crt"),
    "-----BEGIN CERTIFICATE-----\nMIIc\n-----END CERTIFICATE-----\n",
  );
  fs.writeFileSync(
    path.join(dir, "edms.key"),
    "-----BEGIN PRIVATE KEY-----\nk\n-----END PRIVATE KEY-----\n",
  );
  return {
    "edms:tlsUpstream": null,
    "edms:proxy": {
      tls: { certificateFile: path.join(dir, "edms.crt"), keyFile: path.join(dir, "edms.key") },
    },
  };
}

describe("policy production-https", function () {
  this.timeout(60000);
  const runs = new Map<string, RecordedResource[]>();
  /**
   * The program's own resources (production ends TLS upstream in its stack file), as the pack sees them:
   * a fresh copy each time, so a test may break one without breaking the next.
   */
  const programResources = async (
    overrides: Record<string, unknown> = {},
    stack = "production",
  ) => {
    const key = JSON.stringify([stack, Object.keys(overrides)]);
    if (!runs.has(key)) {
      const run = await runProgram({ stack, overrides });
      expect(run.error).to.equal(undefined);
      runs.set(key, run.resources);
    }
    return asPolicyResources(runs.get(key)!);
  };
  const run = (resources: PolicyResource[]) => stackViolations(productionHttps, resources);
  const byRole = (resources: PolicyResource[], role: string) =>
    resources.filter(
      (r) =>
        r.type === "docker:index/container:Container" && labelsOf(r.props)["edms.role"] === role,
    );
  let upstream: PolicyResource[];
  let tls: PolicyResource[];
  const TLS = tlsOverrides();
  beforeEach(async function () {
    upstream = await programResources();
    tls = await programResources(TLS);
  });

  it("passes production ending TLS upstream (ports on 127.0.0.1) and production with TLS at the proxy", async function () {
    expect(await run(upstream)).to.deep.equal([]);
    expect(await run(tls)).to.deep.equal([]);
  });
  it("reports an external database without verify-full and a bucket without https", async function () {
    const [web] = byRole(upstream, "web");
    const envs = (web.props.envs as string[]).filter((e) => !e.startsWith("POSTGRES_HOST="));
    web.props.envs = [
      ...envs,
      "POSTGRES_HOST=db.example.com",
      "PGSSLMODE=require",
      "EDMS_S3_ENDPOINT=http://minio.internal:9000",
    ];
    const found = (await run(upstream)).join("\n");
    expect(found).to.match(/reaches the external database db\.example\.com with PGSSLMODE=require/);
    expect(found).to.match(/bucket at http:\/\/minio\.internal:9000 without TLS/);
    web.props.envs = [...envs, "POSTGRES_HOST=db.example.com", "PGSSLMODE=verify-full"];
    expect(await run(upstream)).to.deep.equal([]);
  });
  it("reports a port published on every interface without TLS at the proxy", async function () {
    const [proxy] = byRole(upstream, "proxy");
    for (const ip of [undefined, "0.0.0.0", "::"]) {
      proxy.props.ports = [{ internal: 8080, external: 8000, ...(ip ? { ip } : {}) }];
      expect(await run(upstream), String(ip)).to.deep.equal([
        "Container edms-proxy publishes plain HTTP on every interface of a production host. Terminate TLS at the proxy (`edms:proxy.tls`: its plain port then only redirects to HTTPS) or, behind a TLS-terminating upstream, set `edms:tlsUpstream: true` (the port binds to `edms:bindAddress`, default 127.0.0.1).",
      ]);
    }
  });
  it("reports a TLS proxy whose plain port still serves the app, or that has no certificate", async function () {
    const [proxy] = byRole(tls, "proxy");
    const uploads = proxy.props.uploads as { file: string; content: string }[];
    const config = uploads[0].content;
    uploads[0].content = config.replace("redirect scheme https code 301", "set-var txn.x int(1)");
    expect((await run(tls)).join()).to.match(/edms-proxy publishes plain HTTP on every interface/);
    uploads[0].content = config.replace("code 301\n", "code 301\n    default_backend web\n");
    expect((await run(tls)).join()).to.match(/edms-proxy publishes plain HTTP on every interface/);
    uploads[0].content = config;
    proxy.props.uploads = uploads.filter((u) => !u.file.endsWith(".pem"));
    expect((await run(tls)).join()).to.match(/edms-proxy publishes plain HTTP on every interface/);
  });
  it("reports web or worker with no allowed hosts, with *, or not told of HTTPS", async function () {
    const [web] = byRole(upstream, "web");
    const [worker] = byRole(upstream, "worker");
    const envs = web.props.envs as string[];
    web.props.envs = envs.filter((e) => !e.startsWith("DJANGO_ALLOWED_HOSTS="));
    worker.props.envs = (worker.props.envs as string[]).map((e) =>
      e.startsWith("DJANGO_ALLOWED_HOSTS=") ? "DJANGO_ALLOWED_HOSTS=edms.internal,*" : e,
    );
    expect(await run(upstream)).to.deep.equal([
      "Container edms-web-2.0.0 answers to any host name (DJANGO_ALLOWED_HOSTS unset). Set `edms:django.allowedHosts` to the names users reach production by.",
      "Container edms-worker answers to any host name (DJANGO_ALLOWED_HOSTS holds *). Set `edms:django.allowedHosts` to the names users reach production by.",
    ]);
    web.props.envs = envs.filter((e) => e !== "EDMS_HTTPS=1");
    worker.props.envs = envs;
    expect(await run(upstream)).to.deep.equal([
      "Container edms-web-2.0.0 is not told it is served over HTTPS (EDMS_HTTPS=1): its cookies would not be marked secure. Set `edms:proxy.tls` or `edms:tlsUpstream`.",
    ]);
  });
  it("does not apply to staging, which may serve plain HTTP", async function () {
    expect(await run(await programResources({}, "staging"))).to.deep.equal([]);
  });
});

describe("the program passes its own policy pack on every stack", function () {
  const toPolicyResource = (
    r: RecordedResource,
    all: Map<string, PolicyResource>,
  ): PolicyResource => {
    const resource = {
      ...resourceArgs(r.type, r.inputs, r.protect),
      name: r.name,
      dependencies: [] as PolicyResource[],
      propertyDependencies: {},
    } as unknown as PolicyResource;
    all.set(r.name, resource);
    return resource;
  };

  for (const stack of ["dev", "staging", "production", "production on an external database"]) {
    it(`${stack}: no violations`, async function () {
      // Production's stack file pins no digest of its own (none is invented there): the test pins them.
      const external = stack.includes("external");
      const run = external
        ? await runProgram({
            stack: "production",
            overrides: { ...pinned(), ...externalDatabase() },
          })
        : await runProgram({ stack, overrides: stack === "production" ? pinned() : {} });
      if (external) {
        expect(run.error).to.equal(undefined);
        expect(run.resources.map((r) => r.name)).not.to.include("edms-postgres");
      }
      const byName = new Map<string, PolicyResource>();
      const resources = run.resources.map((r) => toPolicyResource(r, byName));
      run.resources.forEach((r, i) =>
        resources[i].dependencies.push(
          ...r.dependencies.map((d) => byName.get(d)).filter((d): d is PolicyResource => !!d),
        ),
      );
      const found: string[] = [];
      for (const policy of policies) {
        if ("validateResource" in policy) {
          for (const r of resources) {
            found.push(
              ...(await violations(policy, resourceArgs(r.type, r.props, r.opts.protect))),
            );
          }
        } else if ("validateStack" in policy) {
          await (
            policy.validateStack as (a: StackValidationArgs, rep: (m: string) => void) => void
          )(
            {
              resources,
              stackTags: new Map(),
              getConfig: <T extends object>() => ({}) as T,
              notApplicable: () => undefined as never,
            },
            (m) => found.push(m),
          );
        }
      }
      expect(found).to.deep.equal([]);
      if (stack === "production") {
        // The pack does bite on this very program: drop protection and the backup edge, and it says so.
        const unprotected = resources
          .filter((r) => r.type === "docker:index/volume:Volume")
          .map((r) => resourceArgs(r.type, r.props, false));
        const reports = (
          await Promise.all(unprotected.map((a) => violations(productionDataProtected, a)))
        ).flat();
        expect(reports).to.have.length(3);
        // And its stack file as shipped, with no digest, is refused by production-images-by-digest.
        const shipped = await runProgram({ stack });
        const unpinned: string[] = [];
        await (
          productionImagesByDigest.validateStack as (
            a: StackValidationArgs,
            rep: (m: string) => void,
          ) => void
        )(
          {
            resources: shipped.resources.map((r) => toPolicyResource(r, new Map())),
            stackTags: new Map(),
            getConfig: <T extends object>() => ({}) as T,
            notApplicable: () => undefined as never,
          },
          (m) => unpinned.push(m),
        );
        expect(unpinned).to.have.length(8);
      }
    });
  }
});

const digest = (hex: string) => `sha256:${hex.repeat(64)}`;

/** Overrides that pin every image of `stack`'s own file by digest (its other settings kept). */
/** `edms:database` as production may set it: verify-full against a CA file (a throwaway one here). */
function externalDatabase(): Record<string, unknown> {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "edms-policy-")), "ca.pem");
  fs.writeFileSync(file, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
  return {
    "edms:database": {
      host: "db.example.com",
      user: "edms_admin",
      password: { secure: "policy-test-pw" },
      caCertificateFile: file,
    },
  };
}

function pinned(stack = "production"): Record<string, unknown> {
  const file = readStackConfig(REPO_ROOT, stack) as Record<string, Record<string, unknown>>;
  return {
    "edms:releaseDigest": digest("1"),
    "edms:postgresImage": `postgres:16@${digest("2")}`,
    "edms:redisImage": `redis:7@${digest("3")}`,
    "edms:proxy": { ...file["edms:proxy"], image: `haproxy:2.8@${digest("4")}` },
    "edms:backup": {
      ...file["edms:backup"],
      image: `restic/restic:0.18.0@${digest("5")}`,
      schedulerImage: `node:20-bookworm-slim@${digest("6")}`,
    },
  };
}

describe("policy production-images-by-digest", function () {
  this.timeout(60000);
  const resourcesOf = async (stack: string, overrides: Record<string, unknown> = {}) => {
    const run = await runProgram({ stack, overrides });
    expect(run.error).to.equal(undefined);
    return asPolicyResources(run.resources);
  };
  const run = (resources: PolicyResource[]) => stackViolations(productionImagesByDigest, resources);

  it("passes production with every image pinned: the release's RemoteImage, web/worker by content id", async function () {
    const resources = await resourcesOf("production", pinned());
    const remote = resources.find((r) => r.type === "docker:index/remoteImage:RemoteImage");
    expect(remote?.props.name).to.equal(`edms-sample/backend:2.0.0@${digest("1")}`);
    expect(await run(resources)).to.deep.equal([]);
  });
  it("reports the shipped Pulumi.production.yaml: each image by tag, with the key that pins it", async function () {
    const found = await run(await resourcesOf("production"));
    const expected: [string, string][] = [
      [
        "edms-sample/backend:2.0.0 (the release image)",
        "`edms:releaseDigest` to the release image's digest",
      ],
      ["postgres:16 (container edms-postgres)", "`edms:postgresImage` to `<image>@sha256:…`"],
      ["redis:7 (container edms-redis)", "`edms:redisImage`"],
      ["haproxy:2.8 (container edms-proxy)", "`edms:proxy.image`"],
      ["restic/restic:0.18.0 (edms-ops' helper containers)", "`edms:backup.image`"],
      ["node:20-bookworm-slim (BASE of edms-scheduler-image)", "`edms:backup.schedulerImage`"],
      // The scheduler's image is built on the stack's postgres and backup images: pinned by the same keys.
      ["postgres:16 (POSTGRES of edms-scheduler-image)", "`edms:postgresImage`"],
      ["restic/restic:0.18.0 (RESTIC of edms-scheduler-image)", "`edms:backup.image`"],
    ];
    expect(found).to.have.length(expected.length);
    for (const [image, key] of expected) {
      const message = found.find((m) => m.startsWith(`Production pulls ${image} by tag`));
      expect(message, image).to.contain(`Pin it by digest: set ${key}`);
      expect(message).to.contain("`docker buildx imagetools inspect <image>`");
      expect(message).to.contain("`docker inspect --format '{{index .RepoDigests 0}}' <image>`");
    }
  });
  it("reports a container by tag where a content id or a digest belongs, and leaves the built scheduler image to its build args", async function () {
    const resources = await resourcesOf("production", pinned());
    const byRole = (role: string) =>
      resources.find(
        (r) =>
          r.type === "docker:index/container:Container" && labelsOf(r.props)["edms.role"] === role,
      )!;
    byRole("web").props.image = "edms-sample/backend:2.0.0";
    byRole("redis").props.image = "redis:7";
    expect(byRole("scheduler").props.image).to.match(/^edms-scheduler:/);
    const found = (await run(resources)).sort();
    expect(found).to.have.length(2);
    expect(found[0]).to.match(
      /^Production pulls edms-sample\/backend:2.0.0 \(container edms-web-2.0.0\) by tag.*`edms:releaseDigest`/,
    );
    expect(found[1]).to.match(
      /^Production pulls redis:7 \(container edms-redis\).*`edms:redisImage`/,
    );
    // A digest that is not 64 hex digits pins nothing.
    byRole("web").props.image = byRole("postgres").props.image;
    byRole("redis").props.image = `redis:7@sha256:${"3".repeat(63)}`;
    expect(await run(resources)).to.have.length(1);
  });
  it("does not apply to staging, where the program warns once instead", async function () {
    expect(await run(await resourcesOf("staging"))).to.deep.equal([]);
    const staging = await runProgram({ stack: "staging" });
    expect(staging.warnings).to.have.length(1);
    expect(staging.warnings[0]).to.match(
      /^Stack staging pulls 6 image\(s\) by tag.*: edms-sample\/backend:2.0.0 \(`edms:releaseDigest`\), postgres:16 \(`edms:postgresImage`\)/,
    );
    const quiet = await runProgram({ stack: "staging", overrides: pinned("staging") });
    expect(quiet.warnings).to.deep.equal([]);
    expect((await runProgram({ stack: "production" })).warnings).to.deep.equal([]);
  });
});
