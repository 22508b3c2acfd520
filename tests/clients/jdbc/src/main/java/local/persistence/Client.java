package local.persistence;

import java.net.URI;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.Properties;
import org.flywaydb.core.Flyway;

/**
 * A Java service started with its env file: Flyway migrates through MIGRATION_DATABASE_URL, then
 * the app writes and reads through DATABASE_URL with the driver's defaults (server-side prepared
 * statements from the fifth execution on, which the pooler must carry across transactions).
 * URLs come from the environment, never the command line. Prints "ok <rows>" and exits 0.
 */
public final class Client {
  /** Flyway's schema: its own, so the service's database may hold other tables already. */
  static final String SCHEMA = "jdbc_client";

  private Client() {}

  /** The libpq URL of an env file as what JDBC takes: a jdbc: URL and its login. */
  record Target(String jdbcUrl, Properties login) {}

  static Target target(String libpqUrl) {
    URI uri = URI.create(libpqUrl);
    String[] userInfo = uri.getRawUserInfo().split(":", 2);
    Properties login = new Properties();
    login.setProperty("user", decode(userInfo[0]));
    login.setProperty("password", decode(userInfo[1]));
    String url = "jdbc:postgresql://" + uri.getHost() + ":" + uri.getPort() + uri.getRawPath();
    return new Target(url, login);
  }

  static String decode(String part) {
    return java.net.URLDecoder.decode(part, java.nio.charset.StandardCharsets.UTF_8);
  }

  public static void main(String[] args) throws Exception {
    Target migration = target(System.getenv("MIGRATION_DATABASE_URL"));
    Flyway.configure()
        .dataSource(
            migration.jdbcUrl(),
            migration.login().getProperty("user"),
            migration.login().getProperty("password"))
        .locations("filesystem:" + args[0])
        .schemas(SCHEMA)
        .load()
        .migrate();
    Target app = target(System.getenv("DATABASE_URL"));
    long rows;
    try (Connection conn = DriverManager.getConnection(app.jdbcUrl(), app.login())) {
      conn.setAutoCommit(false);
      try (PreparedStatement insert = conn.prepareStatement("INSERT INTO " + SCHEMA + ".orders (item) VALUES (?)");
          PreparedStatement count = conn.prepareStatement("SELECT count(*) FROM " + SCHEMA + ".orders WHERE item = ?")) {
        for (int i = 0; i < 20; i++) {
          insert.setString(1, "jdbc-" + i);
          insert.executeUpdate();
          conn.commit(); // each transaction may get another server connection
          count.setString(1, "jdbc-" + i);
          try (ResultSet result = count.executeQuery()) {
            result.next();
            if (result.getLong(1) != 1) {
              throw new IllegalStateException("jdbc-" + i + " not read back");
            }
          }
          conn.commit();
        }
      }
      try (PreparedStatement total = conn.prepareStatement("SELECT count(*) FROM " + SCHEMA + ".orders");
          ResultSet result = total.executeQuery()) {
        result.next();
        rows = result.getLong(1);
      }
    }
    System.out.println("ok " + rows);
  }
}
