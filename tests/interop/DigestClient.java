// Apache HttpClient 4.5 (Debian libhttpclient-java) as an independent HTTP Digest client of the
// BM-SC Key Request function (docs/profile.md §4), after docs/oracles.md Appendix C.
//
// Usage: java -cp $CP DigestClient.java URL CONTENT_TYPE BODY_FILE USERNAME PASSWORD
//
// HttpClient answers the 401 itself (auth-int when offered: the entity is repeatable). It does
// not check the server's Authentication-Info, so this program does, on its own: it recomputes
// rspauth (RFC 7616 §3.5: A2 = ":" uri [":" H(body)] with an empty method) from the
// Authorization it sent and the response body, with java.security.MessageDigest.
//
// Prints: "status N", "authorization-qop Q", "algorithm A", "rspauth verified|mismatch|missing",
// then "body:" and the response body.
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.MessageDigest;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.http.Header;
import org.apache.http.HttpRequest;
import org.apache.http.auth.AuthScope;
import org.apache.http.auth.UsernamePasswordCredentials;
import org.apache.http.client.methods.CloseableHttpResponse;
import org.apache.http.client.methods.HttpPost;
import org.apache.http.entity.ByteArrayEntity;
import org.apache.http.entity.ContentType;
import org.apache.http.impl.client.BasicCredentialsProvider;
import org.apache.http.impl.client.CloseableHttpClient;
import org.apache.http.impl.client.HttpClients;
import org.apache.http.protocol.HttpCoreContext;
import org.apache.http.util.EntityUtils;

public class DigestClient {
    private static final Pattern PARAM =
        Pattern.compile("([A-Za-z0-9_-]+)\\s*=\\s*(?:\"((?:[^\"\\\\]|\\\\.)*)\"|([^,\\s]+))");

    static Map<String, String> params(String value) {
        Map<String, String> out = new HashMap<>();
        Matcher m = PARAM.matcher(value);
        while (m.find()) {
            String v = m.group(2) != null ? m.group(2).replaceAll("\\\\(.)", "$1") : m.group(3);
            out.put(m.group(1).toLowerCase(), v);
        }
        return out;
    }

    static String hex(String algorithm, byte[] data) throws Exception {
        MessageDigest md = MessageDigest.getInstance(algorithm.toUpperCase().equals("MD5") ? "MD5" : "SHA-256");
        StringBuilder sb = new StringBuilder();
        for (byte b : md.digest(data)) {
            sb.append(String.format("%02x", b));
        }
        return sb.toString();
    }

    static String hex(String algorithm, String text) throws Exception {
        return hex(algorithm, text.getBytes(StandardCharsets.UTF_8));
    }

    public static void main(String[] a) throws Exception {
        String url = a[0];
        String contentType = a[1];
        byte[] body = Files.readAllBytes(Paths.get(a[2]));
        String user = a[3];
        String pass = a[4];
        BasicCredentialsProvider cp = new BasicCredentialsProvider();
        cp.setCredentials(AuthScope.ANY, new UsernamePasswordCredentials(user, pass));
        try (CloseableHttpClient c = HttpClients.custom().setDefaultCredentialsProvider(cp).build()) {
            HttpPost p = new HttpPost(url);
            // Repeatable entity: HttpClient can then hash it for auth-int.
            p.setEntity(new ByteArrayEntity(body, ContentType.create(contentType)));
            HttpCoreContext ctx = HttpCoreContext.create();
            try (CloseableHttpResponse r = c.execute(p, ctx)) {
                byte[] respBody = r.getEntity() == null ? new byte[0] : EntityUtils.toByteArray(r.getEntity());
                System.out.println("status " + r.getStatusLine().getStatusCode());
                HttpRequest sent = ctx.getRequest();
                Header authz = sent == null ? null : sent.getFirstHeader("Authorization");
                Header info = r.getFirstHeader("Authentication-Info");
                String verdict = "missing";
                if (authz != null && info != null) {
                    Map<String, String> s = params(authz.getValue());
                    Map<String, String> i = params(info.getValue());
                    String alg = s.getOrDefault("algorithm", "MD5");
                    String qop = s.get("qop");
                    System.out.println("authorization-qop " + qop);
                    System.out.println("algorithm " + alg);
                    String ha1 = hex(alg, user + ":" + s.get("realm") + ":" + pass);
                    String a2 = ":" + s.get("uri");
                    if ("auth-int".equals(qop)) {
                        a2 += ":" + hex(alg, respBody);
                    }
                    String expected = hex(alg, ha1 + ":" + s.get("nonce") + ":" + s.get("nc") + ":"
                        + s.get("cnonce") + ":" + qop + ":" + hex(alg, a2));
                    boolean echoes = (i.get("nc") == null || i.get("nc").equals(s.get("nc")))
                        && (i.get("cnonce") == null || i.get("cnonce").equals(s.get("cnonce")))
                        && (i.get("qop") == null || i.get("qop").equals(qop));
                    verdict = expected.equalsIgnoreCase(i.getOrDefault("rspauth", "")) && echoes
                        ? "verified" : "mismatch";
                }
                System.out.println("rspauth " + verdict);
                System.out.println("body:");
                System.out.print(new String(respBody, StandardCharsets.UTF_8));
            }
        }
    }
}
