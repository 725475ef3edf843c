using Bulwark.Server.Security;

namespace Bulwark.Server.Tests.Security;

public class KeyExpiryTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 26, 10, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData("1m", 0, 0, 1)]
    [InlineData("90m", 0, 1, 30)]
    [InlineData("12h", 0, 12, 0)]
    [InlineData("30d", 30, 0, 0)]
    [InlineData("3650d", 3650, 0, 0)]
    [InlineData("30D", 30, 0, 0)]
    public void LifetimesCountFromNow(string text, int days, int hours, int minutes) =>
        Assert.Equal(Now + new TimeSpan(days, hours, minutes, 0), KeyExpiry.Parse(text, Now));

    [Theory]
    [InlineData("2027-01-01", "2027-01-01T00:00:00+00:00")]
    [InlineData("2027-01-01T12:30:00Z", "2027-01-01T12:30:00+00:00")]
    [InlineData("2027-01-01T12:30:00+02:00", "2027-01-01T10:30:00+00:00")]
    public void DatesAreInstantsInUtc(string text, string expected) =>
        Assert.Equal(DateTimeOffset.Parse(expected, System.Globalization.CultureInfo.InvariantCulture), KeyExpiry.Parse(text, Now));

    [Theory]
    [InlineData("0d")]
    [InlineData("3651d")]
    [InlineData("87601h")]
    [InlineData("-1d")]
    [InlineData("5y")]
    [InlineData("tomorrow")]
    [InlineData("2027-13-01")]
    [InlineData("")]
    public void AnythingElseIsRefusedNamingTheValue(string text)
    {
        var e = Assert.Throws<ArgumentException>(() => KeyExpiry.Parse(text, Now));
        Assert.Contains($"got '{text}'", e.Message);
    }
}
