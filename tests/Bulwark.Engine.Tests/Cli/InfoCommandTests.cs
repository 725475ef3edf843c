using Bulwark.Engine.Formats;
using Bulwark.Engine.Kernels.Cpu;

namespace Bulwark.Engine.Tests.Cli;

public class InfoCommandTests
{
    [Fact]
    public void InfoNamesTheKernelEachWeightTypeRunsOnThisCpu()
    {
        var result = CliRunner.Run("info", "--data-dir", Path.Combine(Path.GetTempPath(), "bulwark-info-test"));
        Assert.Equal(0, result.ExitCode);
        var isa = KernelIsa.Active;
        foreach (var type in new[] { GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.Q5_0, GgmlType.Q8_0, GgmlType.IQ4_XS })
            Assert.Contains($"  {type,-7} {MatMul.Describe(type, isa)}", result.Output);
        Assert.Contains("against Q8_K activations", MatMul.Describe(GgmlType.Q4_K, isa));
        Assert.Contains("against Q8_K activations", MatMul.Describe(GgmlType.IQ4_XS, isa));
        Assert.Contains("against Q8_0 activations", MatMul.Describe(GgmlType.Q5_1, isa));
        Assert.Equal("not supported", MatMul.Describe(GgmlType.IQ2_XXS, isa));
        Assert.Contains($"  AWQ/GPTQ 4-bit safetensors are repacked at load to Q4_1: {MatMul.Describe(GgmlType.Q4_1, isa)}", result.Output);
    }
}
