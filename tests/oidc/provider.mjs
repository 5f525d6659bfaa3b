// A real OpenID Connect provider (node-oidc-provider) for sundstat's sign-in tests.
//
// Usage: node provider.mjs PORT REDIRECT_URI
// Issuer http://127.0.0.1:PORT, one confidential client (sundstat-test / sundstat-test-secret) that
// must use PKCE, the development login and consent forms (any password), and these accounts:
const ACCOUNTS = {
  alice: { name: "Alice Andersen", email: "alice@ku.dk", email_verified: true, org: "ku" },
  bob: { name: "Bob Berg", email: "bob@mail.example", email_verified: true, org: "nowhere" },
  carol: { name: "Carol Christensen", email: "carol@ku.dk", email_verified: false, org: "sdu" },
};

import Provider from "oidc-provider";

const [port, redirectUri] = process.argv.slice(2);
if (!port || !redirectUri) {
  console.error("usage: node provider.mjs PORT REDIRECT_URI");
  process.exit(2);
}

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      client_id: "sundstat-test",
      client_secret: "sundstat-test-secret",
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name"],
    org: ["org"],
  },
  scopes: ["openid", "email", "profile", "org"],
  // Put the scope's claims in the ID token, which is all sundstat reads.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  cookies: { keys: ["sundstat-test-cookie-key"] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const account = ACCOUNTS[id];
    if (!account) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...account }) };
  },
});
provider.listen(Number(port), "127.0.0.1");
