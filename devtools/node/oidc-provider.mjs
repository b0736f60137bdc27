// A real, certified OpenID provider (panva's oidc-provider) on loopback, for the tests and `lobe dev`.
// Its development login form takes any e-mail address as the login and any password; the account's
// claims are that e-mail, verified. A login of `EMAIL;email_verified=JSON` (JSON: `false`, `"false"`,
// …, or `absent` for no claim at all) is another account (its own `sub`) claiming EMAIL with that
// `email_verified`: the tests' attacker, whose provider vouches for nothing. It requires PKCE (S256) and checks the nonce it is given, as a
// production provider does.
//
// node oidc-provider.mjs PORT CLIENTS_JSON
//   CLIENTS_JSON: [{"client_id": "...", "client_secret": "...", "redirect_uris": ["http://..."]}]
// Prints "oidc-provider ready <issuer>" once it listens.
import Provider from "oidc-provider";

const [port, clientsJson] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const clients = JSON.parse(clientsJson).map((client) => ({
  grant_types: ["authorization_code"],
  response_types: ["code"],
  token_endpoint_auth_method: "client_secret_basic",
  ...client,
}));

const provider = new Provider(issuer, {
  clients,
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        const [email, verified] = id.split(";email_verified=");
        if (verified === undefined) return { sub: id, email, email_verified: true };
        if (verified === "absent") return { sub: id, email };
        return { sub: id, email, email_verified: JSON.parse(verified) };
      },
    };
  },
  claims: { openid: ["sub"], email: ["email", "email_verified"] },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  // Random per start: nothing here outlives the process.
  cookies: { keys: [crypto.randomUUID()] },
});
provider.proxy = false;

const server = provider.listen(Number(port), "127.0.0.1", () => {
  console.log(`oidc-provider ready ${issuer}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
