/**
 * The HTTP probe of `edms-ops health` and `switch`: which URL it takes and what the app sees of it. The probe's
 * Python runs here against a local server, as it runs inside a web container against the proxy or gunicorn.
 */
import { expect } from "chai";
import { execFile, spawnSync } from "child_process";
import * as http from "http";
import { AddressInfo } from "net";
import { validateSettings } from "../../../model/settings";
import { probeScript, publicHealthUrl, WEB_HEALTH_URL } from "../../../ops/reports/health";

const settings = (raw: Record<string, unknown>) =>
  validateSettings("s", { environment: "staging", version: "1", namePrefix: "edms-s", ...raw });
const TLS = { tls: { certificateFile: "c", keyFile: "k" } };

describe("edms-ops HTTP probe", function () {
  it("goes through the proxy's HTTPS frontend with TLS (its plain port only redirects), else its plain one", function () {
    expect(publicHealthUrl(settings({}))).to.equal("http://edms-s-proxy:8080/health/");
    expect(publicHealthUrl(settings({ tlsUpstream: true }))).to.equal(
      "http://edms-s-proxy:8080/health/",
    );
    expect(publicHealthUrl(settings({ proxy: TLS }))).to.equal("https://edms-s-proxy:8443/health/");
    expect(publicHealthUrl(settings({ proxy: { enabled: false } }))).to.equal(WEB_HEALTH_URL);
    expect(WEB_HEALTH_URL).to.equal("http://127.0.0.1:8000/health/");
  });

  describe("against a server", function () {
    let server: http.Server;
    let port = 0;
    const seen: { host?: string; path?: string }[] = [];
    before(async function () {
      if (spawnSync("python3", ["--version"]).status !== 0) {
        this.skip(); // the probe runs in the web image's python3; this machine has none
      }
      server = http.createServer((req, res) => {
        seen.push({ host: req.headers.host, path: req.url });
        if (req.url === "/trickle/") {
          // One byte at a time, each well within urllib's per-read timeout, never the whole answer.
          res.writeHead(200, { "Content-Type": "application/json", "Content-Length": "1000" });
          const drip = setInterval(() => res.write("{"), 200);
          res.on("close", () => clearInterval(drip));
          return;
        }
        if (req.url === "/moved/") {
          res.writeHead(301, { Location: "https://elsewhere.invalid/health/" }).end("moved");
          return;
        }
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ version: "2.0.0", checks: { database: "ok" } }));
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      port = (server.address() as AddressInfo).port;
    });
    after(() => server?.close());
    // Not spawnSync: the server answering the probe runs on this very event loop.
    const probe = (path: string, host?: string) =>
      new Promise<string[]>((resolve, reject) =>
        execFile(
          "python3",
          ["-c", probeScript(`http://127.0.0.1:${port}${path}`, host)],
          (err, stdout, stderr) =>
            err ? reject(new Error(stderr)) : resolve(stdout.trim().split("\n")),
        ),
      );

    it("sends the Host header it is given, so the app answers it as it answers users", async function () {
      seen.length = 0;
      expect((await probe("/health/", "edms.example.com"))[0]).to.equal("200");
      expect(seen).to.deep.equal([{ host: "edms.example.com", path: "/health/" }]);
      seen.length = 0;
      await probe("/health/");
      expect(seen[0].host).to.equal(`127.0.0.1:${port}`);
    });

    it("gives up on an answer that never ends (one byte at a time) after its deadline, not at the app's pace", async function () {
      // Unbounded, the answer would take 200 s: past this test's timeout.
      const failed = await new Promise<string>((resolve) =>
        execFile(
          "python3",
          ["-c", probeScript(`http://127.0.0.1:${port}/trickle/`, undefined, 2)],
          (err, _stdout, stderr) => resolve(err ? stderr : "answered"),
        ),
      );
      expect(failed).to.contain("no whole answer within 2 s");
    });

    it("reports a redirect instead of following it", async function () {
      seen.length = 0;
      expect(await probe("/moved/", "edms.example.com")).to.deep.equal(["301", "moved"]);
      expect(seen).to.have.length(1);
    });
  });
});
