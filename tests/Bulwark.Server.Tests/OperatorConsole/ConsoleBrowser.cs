using System.Net;
using Bulwark.Server.Tests.Security;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;

namespace Bulwark.Server.Tests.OperatorConsole;

/// <summary>
/// A real headless Chromium (Debian's <c>chromium</c>, driven through its <c>chromedriver</c> by Selenium) signed in to
/// the console of a <see cref="ConsoleHost"/>. Generation can be held mid-stream (<see cref="HoldAfter"/>) so a test
/// sees a reply arrive piece by piece. Screenshots go to the test output directory, <c>console-screenshots/</c>.
/// Without Chromium the tests fail (test.sh installs it through scripts/test-services.sh); they never skip.
/// </summary>
public sealed class ConsoleBrowser : IAsyncLifetime
{
    public const string Chromium = "/usr/bin/chromium";
    public const string ChromeDriver = "/usr/bin/chromedriver";

    private TaskCompletionSource? _hold;
    private int _tokens;
    private int _holdAfter = int.MaxValue;

    public ConsoleHost Host { get; private set; } = null!;
    public ChromeDriver Driver { get; private set; } = null!;
    public string Screenshots { get; } = Path.Combine(AppContext.BaseDirectory, "console-screenshots");

    public async Task InitializeAsync()
    {
        if (!File.Exists(Chromium) || !File.Exists(ChromeDriver))
            throw new InvalidOperationException(
                $"Chromium is not installed ({Chromium} and {ChromeDriver} are needed): the console's browser tests drive Debian's chromium and chromium-driver. " +
                "Install them with scripts/test-services.sh (as root; test.sh runs it) or apt-get install chromium chromium-driver.");
        Host = await ConsoleHost.StartAsync(beforeEachToken: async ct =>
        {
            if (Interlocked.Increment(ref _tokens) > Volatile.Read(ref _holdAfter) && _hold is { } hold) await hold.Task.WaitAsync(ct);
        });
        var options = new ChromeOptions { BinaryLocation = Chromium };
        // Root in a container: Chromium's sandbox needs user namespaces it does not have here.
        options.AddArguments("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1100", "--no-first-run");
        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(ChromeDriver)!, Path.GetFileName(ChromeDriver));
        service.SuppressInitialDiagnosticInformation = true;
        Driver = new ChromeDriver(service, options, TimeSpan.FromMinutes(2));
        Directory.CreateDirectory(Screenshots);
    }

    /// <summary>From now on, streams stop after <paramref name="tokens"/> more tokens until <see cref="Release"/>.</summary>
    public void HoldAfter(int tokens)
    {
        _hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _holdAfter, Volatile.Read(ref _tokens) + tokens);
    }

    public void Release()
    {
        Volatile.Write(ref _holdAfter, int.MaxValue);
        _hold?.TrySetResult();
    }

    public void Open(string path) => Driver.Navigate().GoToUrl(new Uri(Host.Address, path));

    public IWebElement Find(string css) => Driver.FindElement(By.CssSelector(css));

    public IReadOnlyList<IWebElement> FindAll(string css) => Driver.FindElements(By.CssSelector(css));

    /// <summary>Signs in through the form, as a person would.</summary>
    public async Task SignInAsync()
    {
        Open("console/sign-in");
        Find("#key").SendKeys(Host.Admin.Key);
        Find("form.sign-in button[type=submit]").Click();
        await UntilAsync(() => Driver.Url.TrimEnd('/').EndsWith("/console", StringComparison.Ordinal), "the sign-in did not land on the overview");
    }

    /// <summary>Waits for a condition of the page (up to 20 s: this machine is shared); a condition that throws counts as not yet.</summary>
    public async Task UntilAsync(Func<bool> condition, string failure)
    {
        var met = await Eventually.WithinAsync(TimeSpan.FromSeconds(20), () =>
        {
            try { return Task.FromResult(condition()); }
            catch (WebDriverException) { return Task.FromResult(false); }
        });
        if (!met) Screenshot("failed-" + new string(failure.Where(char.IsLetterOrDigit).Take(40).ToArray()));
        Assert.True(met, failure);
    }

    public void Screenshot(string name) => Driver.GetScreenshot().SaveAsFile(Path.Combine(Screenshots, name + ".png"));

    /// <summary>Whether any injected script ran: every hostile value in the tests sets <c>window.__xss</c>.</summary>
    public bool ScriptInjected() => Driver.ExecuteScript("return typeof window.__xss !== 'undefined';") is true;

    public async Task DisposeAsync()
    {
        Release();
        Driver?.Quit();
        Driver?.Dispose();
        if (Host is not null) await Host.DisposeAsync();
    }
}

/// <summary>Its own address on loopback, so blocking it spares the test's and the browser's.</summary>
internal static class Loopback
{
    public static readonly IPAddress Blocked = IPAddress.Parse("127.0.0.3");
}
