using Bulwark.Server.Security;

namespace Bulwark.Server.Tests.Security;

public class RotationGraceTests
{
    [Theory]
    [InlineData("0", 0)]
    [InlineData("0h", 0)]
    [InlineData("90s", 90)]
    [InlineData("30m", 1800)]
    [InlineData("24h", 86400)]
    [InlineData(" 24H ", 86400)]
    [InlineData("7d", 604800)]
    [InlineData("30d", 2592000)]
    [InlineData("720h", 2592000)]
    [InlineData("2592000s", 2592000)]
    public void DurationsUpToThirtyDaysAreAccepted(string text, long seconds) =>
        Assert.Equal(TimeSpan.FromSeconds(seconds), RotationGrace.Parse(text));

    [Theory]
    [InlineData("31d")]
    [InlineData("721h")]
    [InlineData("43201m")]
    [InlineData("2592001s")]
    [InlineData("99999999999999999d")]
    public void AGraceAboveThirtyDaysIsRefusedNamingTheCapAndTheValue(string text) =>
        Assert.Equal($"grace must be at most 30d (720h); got '{text}'", Assert.Throws<ArgumentException>(() => RotationGrace.Parse(text)).Message);

    [Theory]
    [InlineData("")]
    [InlineData("soon")]
    [InlineData("24")]
    [InlineData("-1h")]
    [InlineData("1.5h")]
    [InlineData("2w")]
    [InlineData("h")]
    [InlineData("1d12h")]
    public void AnythingElseIsRefusedNamingTheValueAndTheForm(string text) =>
        Assert.Equal($"grace must be 0 (revoke the old key at once) or a duration such as 90s, 30m, 24h or 7d; got '{text}'",
            Assert.Throws<ArgumentException>(() => RotationGrace.Parse(text)).Message);

    [Theory]
    [InlineData(0, "0")]
    [InlineData(90, "90s")]
    [InlineData(1800, "30m")]
    [InlineData(86400, "24h")]
    [InlineData(90000, "25h")]
    [InlineData(172800, "2d")]
    [InlineData(2592000, "30d")]
    public void FormatWritesTheGraceAsAnOperatorWould(long seconds, string text) =>
        Assert.Equal(text, RotationGrace.Format(TimeSpan.FromSeconds(seconds)));
}
