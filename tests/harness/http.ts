/**
 * One HTTP(S) request from this machine to a stack's published port, as a browser behind a given Host name
 * would send it. TLS certificates are not verified (the tests' own, self-signed); redirects are not followed.
 */
import * as http from "http";
import * as https from "https";

export interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

export function request(
  url: string,
  options: { host?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const target = new URL(url);
  const secure = target.protocol === "https:";
  const headers = { ...(options.host ? { Host: options.host } : {}), ...options.headers };
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).get(
      {
        host: target.hostname,
        port: target.port,
        path: `${target.pathname}${target.search}`,
        headers,
        timeout: 30_000,
        ...(secure
          ? { rejectUnauthorized: false, servername: options.host?.replace(/:\d+$/, "") }
          : {}),
      },
      (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`timeout: ${url}`)));
    req.on("error", reject);
  });
}

/** The `Set-Cookie` header of an answer naming `cookie`, or "" when there is none. */
export function setCookie(answer: Answer, cookie: string): string {
  return (answer.headers["set-cookie"] ?? []).find((c) => c.startsWith(`${cookie}=`)) ?? "";
}
