namespace Bulwark.Server.OperatorConsole;

/// <summary>The sign-in form: an admin key, exchanged for a session; the key is not kept by the browser.</summary>
public static class SignInPage
{
    public static Html Render(string? error) => Layout.Bare("Sign in", Html.Of($"""
        {(error is null ? Html.Empty : Html.Of($"""<p class="error" role="alert">{error}</p>"""))}
        <form method="post" action="{ConsoleEndpoints.Prefix}/sign-in" class="sign-in" autocomplete="off">
          <label for="key">Admin key</label>
          <input id="key" name="key" type="password" required maxlength="200" autocomplete="off" spellcheck="false" autofocus>
          <button type="submit">Sign in</button>
        </form>
        <p class="hint">An admin key (<code>bwa_…</code>) from the first start or <code>bulwark keys create --admin</code>. It is exchanged for a
        session held by the server; this browser keeps only a session cookie.</p>
        """));
}
