namespace Bulwark.Server.OperatorConsole;

/// <summary>The frame of every console page: head (the one stylesheet and the one script), navigation, sign-out.</summary>
public static class Layout
{
    private static readonly (string Path, string Title)[] Sections =
    [
        ("", "Overview"), ("/keys", "Keys"), ("/models", "Models"), ("/incidents", "Incidents"), ("/guard", "Guard"), ("/audit", "Audit"), ("/playground", "Playground"),
    ];

    /// <summary>A page of the signed-in console; <paramref name="current"/> is its section's path ("" for the overview).</summary>
    public static Html Page(string title, string current, ConsoleSession session, Html body) => Document(title, Html.Of($"""
        <a class="skip" href="#main">Skip to content</a>
        <header>
          <span class="brand">Bulwark console</span>
          <nav aria-label="Sections"><ul>{Sections.Select(s => Html.Of($"""<li><a href="{ConsoleEndpoints.Prefix}{s.Path}"{(s.Path == current ? Html.Of($" aria-current=\"page\"") : Html.Empty)}>{s.Title}</a></li>"""))}</ul></nav>
          <form method="post" action="{ConsoleEndpoints.Prefix}/sign-out" class="sign-out">
            {CsrfField(session)}
            <span class="who">admin key {session.KeyId}</span>
            <button type="submit">Sign out</button>
          </form>
        </header>
        <main id="main">
          <h1>{title}</h1>
          {body}
        </main>
        """), session.CsrfToken);

    /// <summary>A page outside a session (sign-in, a refusal).</summary>
    public static Html Bare(string title, Html body) => Document(title, Html.Of($"""
        <main id="main" class="bare">
          <h1>{title}</h1>
          {body}
        </main>
        """), null);

    /// <summary>The hidden field that carries the session's CSRF token in a form.</summary>
    public static Html CsrfField(ConsoleSession session) =>
        Html.Of($"""<input type="hidden" name="{ConsoleAccess.CsrfField}" value="{session.CsrfToken}">""");

    private static Html Document(string title, Html body, string? csrf) => Html.Of($"""
        <!DOCTYPE html>
        <html lang="en">
        <head>
          <meta charset="utf-8">
          <meta name="viewport" content="width=device-width, initial-scale=1">
          {(csrf is null ? Html.Empty : Html.Of($"""<meta name="csrf-token" content="{csrf}">"""))}
          <title>{title} · Bulwark</title>
          <link rel="stylesheet" href="{ConsoleEndpoints.Prefix}/assets/console.css">
          <script type="module" src="{ConsoleEndpoints.Prefix}/assets/console.js"></script>
        </head>
        <body>
        {body}
        </body>
        </html>
        """);
}
