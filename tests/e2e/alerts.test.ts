/**
 * Alerts that reach a person, on one staging stack with a 20-second schedule: a real HTTP receiver in a
 * container (python3's http.server in the offline Debian image) takes the JSON webhook's POSTs and Apprise's
 * `json://` POSTs, both configured as secrets whose URL path holds a token. `edms-ops alerts test` reaches
 * both; a scheduled backup that fails (postgres stopped) sends exactly one alert per target, with the stack,
 * the condition and the next command, and nothing more on the next failing run; after recovery a resolved
 * message arrives. The token appears in no received body, in `docker inspect` or the logs of the scheduler,
 * or in edms-ops output.
 *
 * The scheduler is on Docker's default bridge (it talks to the engine, not to the stack's internal network),
 * so the receiver runs there too and is addressed by its bridge IP, as the off-host test server is.
 */
import { CONFINEMENT } from "../../model/hardening";
import { expect } from "chai";
import { docker } from "../../ops/engine/docker";
import { dockerRunArgs } from "../../ops/engine/dockerRun";
import { TestStack } from "../harness/stack";

const EVERY_20_SECONDS = "*/20 * * * * *";
const RECEIVER = "e2e-alert-receiver";
const TOKEN = "alert-token-4c9e1b7d2f";

/** Each POST as one JSON line in /received/posts.jsonl: which route, whether the token came, the body. */
const RECEIVER_SCRIPT = `
import http.server, json, sys
TOKEN = sys.argv[1]
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
        route = self.path.strip("/").split("/")[0]
        line = json.dumps({"route": route, "token": TOKEN in self.path, "body": body})
        with open("/received/posts.jsonl", "a") as f:
            f.write(line + "\\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", 8080), Receiver).serve_forever()
`;

interface Post {
  readonly route: string;
  readonly token: boolean;
  readonly body: string;
}
interface WebhookBody {
  stack: string;
  environment: string;
  condition: string;
  state: string;
  summary: string;
  detail: string;
  next: string;
  at: string;
}

describe("e2e: alerts from the Docker host", function () {
  const stack = new TestStack("alerts", "staging", {
    "edms:backup": { schedule: EVERY_20_SECONDS, keep: 2 },
  });
  const scheduler = `${stack.prefix}-scheduler`;

  const posts = async (): Promise<Post[]> =>
    (
      await docker(["exec", RECEIVER, "sh", "-c", "cat /received/posts.jsonl 2>/dev/null || true"])
    ).stdout
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Post);
  const webhooks = async (): Promise<WebhookBody[]> =>
    (await posts()).filter((p) => p.route === "hook").map((p) => JSON.parse(p.body));
  const appriseTitles = async (): Promise<string[]> =>
    (await posts())
      .filter((p) => p.route === "apprise")
      .map((p) => (JSON.parse(p.body) as { title: string }).title);
  const runs = () => stack.scheduleRuns();
  const waitFor = <T>(
    what: string,
    seconds: number,
    probe: () => Promise<T>,
    done: (v: T) => boolean,
  ) => stack.waitForScheduler(what, seconds, probe, done);

  before(async () => {
    await stack.destroy();
    await docker(["rm", "-f", RECEIVER], { allowFailure: true });
    await docker(
      dockerRunArgs({
        image: "edms-test/postgres:15",
        name: RECEIVER,
        detach: true,
        entrypoint: "sh",
        labels: { "edms.role": "test-alert-receiver" },
        // It writes what it receives under /received: not the read-only root of edms-ops' helpers.
        confinement: { ...CONFINEMENT.helpers, readOnly: false },
        args: [
          "-c",
          'mkdir -p /received && exec python3 -c "$1" "$2"',
          "sh",
          RECEIVER_SCRIPT,
          TOKEN,
        ],
      }),
    );
    const ip = (
      await docker(["inspect", "-f", "{{.NetworkSettings.IPAddress}}", RECEIVER])
    ).stdout.trim();
    // As `pulumi config set --secret --path` leaves them in the stack file (the harness decrypts `secure`).
    stack.set("edms:alerts", {
      apprise: [{ secure: `json://${ip}:8080/apprise/${TOKEN}` }],
      webhook: { secure: `http://${ip}:8080/hook/${TOKEN}` },
    });
    await stack.freshDeploy("1.0.0");
  });
  after(async () => {
    await stack.destroy();
    await docker(["rm", "-f", RECEIVER], { allowFailure: true });
  });

  it("edms-ops alerts test reaches both targets from the scheduler; output shows them redacted", async function () {
    await waitFor("a scheduled backup", 90, runs, (r) => r.some((x) => x.outcome === "ok"));
    const result = await stack.ops(["alerts", "test"]);
    expect(result.code, result.stdout + result.stderr).to.equal(0);
    expect(result.stdout).to.match(/^ok {3}webhook http:\/\/[\d.]+\/…$/m);
    expect(result.stdout).to.match(/^ok {3}apprise \(json:\/\/[\d.]+\/…\)$/m);
    expect(result.stdout + result.stderr).not.to.contain(TOKEN);
    const received = await posts();
    expect(received.map((p) => p.route).sort()).to.deep.equal(["apprise", "hook"]);
    expect(received.every((p) => p.token)).to.equal(true);
    expect((await webhooks())[0]).to.deep.include({ stack: stack.name, state: "test" });
    expect((await appriseTitles())[0]).to.match(/^\[edms alerts\] TEST: /);
  });

  it("a failing scheduled backup sends one alert per target, not another on the next failing run", async function () {
    const before = (await runs()).length;
    await docker(["stop", stack.container("postgres")]);
    const firing = await waitFor("the backup-failed alert", 120, webhooks, (w) =>
      w.some((b) => b.state === "firing"),
    );
    const alert = firing.find((b) => b.state === "firing")!;
    expect(alert).to.deep.include({
      stack: stack.name,
      environment: "staging",
      condition: "backup-failed",
    });
    expect(alert.detail).to.match(/postgres/i);
    expect(alert.next).to.contain(`edms-ops health --stack ${stack.name}`);
    expect(Number.isNaN(Date.parse(alert.at))).to.equal(false);
    await waitFor("the apprise alert", 30, appriseTitles, (t) =>
      t.some((x) => /ALERT: the scheduled backup of alerts failed/.test(x)),
    );
    // Two more failing runs (and the checks after them): nothing new.
    const failedSoFar = (await runs()).slice(before).filter((r) => r.outcome === "failed").length;
    await waitFor(
      "two more failed runs",
      120,
      runs,
      (r) => r.slice(before).filter((x) => x.outcome === "failed").length >= failedSoFar + 2,
    );
    await new Promise((r) => setTimeout(r, 10_000));
    expect((await webhooks()).filter((b) => b.state !== "test")).to.have.length(1);
    expect((await appriseTitles()).filter((t) => !t.includes("TEST"))).to.have.length(1);
  });

  it("after recovery a resolved message arrives, and health and evidence show the last alert", async function () {
    await stack.startPostgres();
    const resolved = await waitFor("the resolved message", 120, webhooks, (w) =>
      w.some((b) => b.state === "resolved"),
    );
    expect(resolved.filter((b) => b.state === "resolved")).to.have.length(1);
    expect(resolved.find((b) => b.state === "resolved")).to.deep.include({
      condition: "backup-failed",
      stack: stack.name,
    });
    await waitFor("the apprise resolved message", 30, appriseTitles, (t) =>
      t.some((x) => x.includes("RESOLVED")),
    );
    const evidence = await stack.ops(["evidence", "--json"]);
    expect(evidence.code, evidence.stderr).to.equal(0);
    const alerts = JSON.parse(evidence.stdout).alerts;
    expect(alerts.configured).to.deep.equal({ apprise: 1, webhook: true });
    expect(alerts.targets).to.have.length(2);
    expect(alerts.targets.join(" ")).to.match(
      /^apprise json:\/\/[\d.]+\/… webhook http:\/\/[\d.]+\/…$/,
    );
    expect(alerts.lastAlert.message).to.deep.include({ state: "resolved" });
    expect(alerts.firing).to.deep.equal([]);
    const health = await stack.ops(["health"]);
    expect(health.stdout).to.match(
      /^info alerts to 1 Apprise URL\(s\) \+ webhook: nothing firing; last sent /m,
    );
    for (const output of [evidence.stdout, evidence.stderr, health.stdout, health.stderr]) {
      expect(output).not.to.contain(TOKEN);
    }
  });

  it("the token is in no received body, in docker inspect or in the logs of the scheduler", async function () {
    for (const post of await posts()) {
      expect(post.body).not.to.contain(TOKEN);
    }
    expect((await docker(["inspect", scheduler])).stdout).not.to.contain(TOKEN);
    const logs = await docker(["logs", scheduler]);
    expect(logs.stdout + logs.stderr).not.to.contain(TOKEN);
    // The files hold it, root-only, where apprise and the webhook sender read it.
    const mode = await docker([
      "exec",
      scheduler,
      "stat",
      "-c",
      "%a %U",
      "/run/secrets/edms-alerts/webhook",
    ]);
    expect(mode.stdout.trim()).to.equal("400 root");
  });
});
