/** The checks behind `edms-ops health` and the deploy's health gate. */
import { POSTGRES_DB, POSTGRES_USER } from "../../components/postgres";
import { Settings } from "../../components/config";
import { WEB_PORT } from "../../components/djangoService";
import { docker, inspectContainer } from "./docker";

export interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

async function execCheck(name: string, args: string[], expect?: RegExp): Promise<CheckResult> {
  const result = await docker(["exec", ...args], { allowFailure: true });
  const text = (result.stdout + result.stderr).trim();
  const ok = result.code === 0 && (!expect || expect.test(text));
  return { name, ok, detail: ok ? "ok" : text.split("\n").pop() || `exit ${result.code}` };
}

/** db, redis, media and migrations are checked by the app's own /health/ from inside the web container. */
export async function runChecks(settings: Settings): Promise<CheckResult[]> {
  const n = settings.names;
  const results: CheckResult[] = [
    await execCheck("postgres", [
      n.postgresContainer,
      "pg_isready",
      "-U",
      POSTGRES_USER,
      "-d",
      POSTGRES_DB,
    ]),
    await execCheck("redis", [n.redisContainer, "redis-cli", "ping"], /PONG/),
  ];
  const worker = await inspectContainer(n.workerContainer);
  results.push({
    name: "worker",
    ok: worker.running,
    detail: worker.running ? "ok" : worker.exists ? "not running" : "missing",
  });
  const probe =
    "import json,sys,urllib.request,urllib.error\n" +
    `try:\n r=urllib.request.urlopen('http://127.0.0.1:${WEB_PORT}/health/',timeout=10); code=r.status; body=r.read()\n` +
    "except urllib.error.HTTPError as e:\n code=e.code; body=e.read()\n" +
    "print(code); print(body.decode())";
  const web = await docker(["exec", n.webContainer, "python3", "-c", probe], {
    allowFailure: true,
  });
  if (web.code !== 0) {
    results.push({
      name: "http",
      ok: false,
      detail: (web.stderr.trim().split("\n").pop() ?? "") || "web container not answering",
    });
    return results;
  }
  const [status, ...body] = web.stdout.trim().split("\n");
  results.push({
    name: "http /health/",
    ok: status === "200",
    detail: status === "200" ? "200" : `${status}`,
  });
  try {
    const parsed = JSON.parse(body.join("\n")) as { checks: Record<string, string> };
    for (const [name, value] of Object.entries(parsed.checks)) {
      results.push({ name, ok: value === "ok", detail: value });
    }
  } catch {
    results.push({ name: "health body", ok: false, detail: "not JSON" });
  }
  return results;
}
