// Reads numeric CSV data (invariant culture, comma-separated, optional header) into a Dataset, in two layouts:
// features and labels in separate files (X_train.csv + y_train.csv), or one file with a label column.
using System.Globalization;

namespace DistTrain.Core.Data;

public static class CsvReader
{
    /// <summary>
    /// Layout (a): every column of <paramref name="featuresPath"/> is a feature; <paramref name="labelsPath"/> has
    /// one label column. Either may start with a header row. With <paramref name="classes"/>, labels are checked
    /// against 0..classes-1; otherwise Classes = max label + 1.
    /// </summary>
    public static Dataset ReadSeparate(string featuresPath, string labelsPath, int? classes = null)
    {
        string xPath = Path.GetFullPath(featuresPath), yPath = Path.GetFullPath(labelsPath);
        var features = ReadFeatureRows(xPath, out int width, out int rows);

        var labels = new List<int>(rows);
        foreach (var row in ReadRows(yPath))
        {
            if (row.Count != 1)
                throw new UserInputException($"{yPath} line {row.Line}: expected 1 column (the label), found {row.Count}");
            labels.Add(row.Label(0, classes));
        }
        if (labels.Count != rows)
            throw new UserInputException($"{yPath}: {labels.Count} labels, but {xPath} has {rows} data rows");
        return Build(features, labels, width, classes, xPath);
    }

    /// <summary>Samples without labels (every column a feature), e.g. to predict; the labels are all 0.</summary>
    public static Dataset ReadFeatures(string featuresPath)
    {
        string xPath = Path.GetFullPath(featuresPath);
        var features = ReadFeatureRows(xPath, out int width, out int rows);
        return Build(features, new List<int>(new int[rows]), width, 1, xPath);
    }

    /// <summary>True when the file starts with a header row that names <paramref name="column"/>.</summary>
    public static bool HeaderHas(string path, string column)
    {
        foreach (var row in ReadRows(Path.GetFullPath(path), keepHeader: true))
            return row.IsHeader && row.FindColumn(column) >= 0;
        return false;
    }

    private static List<float> ReadFeatureRows(string xPath, out int width, out int rows)
    {
        var features = new List<float>();
        width = 0;
        rows = 0;
        foreach (var row in ReadRows(xPath))
        {
            if (width == 0) width = row.Count;
            else if (row.Count != width) throw Ragged(xPath, row.Line, width, row.Count);
            for (int c = 0; c < row.Count; c++) features.Add(row.Feature(c));
            rows++;
        }
        if (rows == 0) throw new UserInputException($"{xPath}: no data rows");
        return features;
    }

    /// <summary>
    /// Layout (b): one file whose label column is named <paramref name="labelColumn"/> in the header row, or,
    /// when the file has no header, is the 0-based column index given as text ("0").
    /// </summary>
    public static Dataset ReadCombined(string path, string labelColumn = "label", int? classes = null)
    {
        string fullPath = Path.GetFullPath(path);
        var features = new List<float>();
        var labels = new List<int>();
        int columns = 0, labelIndex = -1;
        foreach (var row in ReadRows(fullPath, keepHeader: true))
        {
            if (row.IsHeader)
            {
                labelIndex = row.FindColumn(labelColumn);
                // A header without that name still accepts a column index ("0").
                if (labelIndex < 0 && int.TryParse(labelColumn, NumberStyles.None, CultureInfo.InvariantCulture, out int index)
                    && index < row.Count)
                    labelIndex = index;
                if (labelIndex < 0)
                    throw new UserInputException(
                        $"{fullPath} line {row.Line}: no column named '{labelColumn}' (data.labelColumn) in the header {row.Describe()}");
                columns = row.Count;
                continue;
            }
            if (columns == 0)
            {
                columns = row.Count;
                if (!int.TryParse(labelColumn, NumberStyles.None, CultureInfo.InvariantCulture, out labelIndex))
                    throw new UserInputException(
                        $"{fullPath}: has no header row, so data.labelColumn must be a 0-based column index, found '{labelColumn}'");
                if (labelIndex >= columns)
                    throw new UserInputException(
                        $"{fullPath}: data.labelColumn {labelIndex} is out of range, the file has {columns} columns (0..{columns - 1})");
            }
            if (row.Count != columns) throw Ragged(fullPath, row.Line, columns, row.Count);
            if (columns < 2)
                throw new UserInputException($"{fullPath}: has only the label column, expected at least one feature column too");
            for (int c = 0; c < columns; c++)
            {
                if (c == labelIndex) labels.Add(row.Label(c, classes));
                else features.Add(row.Feature(c));
            }
        }
        if (labels.Count == 0) throw new UserInputException($"{fullPath}: no data rows");
        return Build(features, labels, columns - 1, classes, fullPath);
    }

    private static Dataset Build(List<float> features, List<int> labels, int width, int? classes, string source)
    {
        int max = -1;
        foreach (int label in labels) max = Math.Max(max, label);
        return new Dataset(features.ToArray(), labels.ToArray(), width, classes ?? max + 1, source);
    }

    private static UserInputException Ragged(string path, long line, int expected, int found) =>
        new($"{path} line {line}: expected {expected} columns, found {found}");

    /// <summary>
    /// Yields the non-blank rows; the first one is a header when any of its cells is not a number (skipped
    /// unless <paramref name="keepHeader"/>). Line numbers are 1-based physical lines, as an editor shows them.
    /// </summary>
    private static IEnumerable<CsvRow> ReadRows(string fullPath, bool keepHeader = false)
    {
        StreamReader reader;
        try
        {
            reader = new StreamReader(fullPath, System.Text.Encoding.UTF8, detectEncodingFromByteOrderMarks: true,
                new FileStreamOptions { Access = FileAccess.Read, Share = FileShare.Read, BufferSize = 1 << 16 });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserInputException($"{fullPath}: cannot open ({e.Message})", e);
        }
        using (reader)
        {
            var row = new CsvRow(fullPath);
            long lineNumber = 0;
            bool first = true;
            string? text;
            while ((text = ReadLine(reader, fullPath)) is not null)
            {
                lineNumber++;
                if (string.IsNullOrWhiteSpace(text)) continue;
                row.Reset(text, lineNumber);
                if (first)
                {
                    first = false;
                    row.IsHeader = !row.AllNumeric() || row.IsColumnIndexSequence();
                    if (row.IsHeader && !keepHeader) continue;
                }
                else row.IsHeader = false;
                yield return row;
            }
        }
    }

    private static string? ReadLine(StreamReader reader, string fullPath)
    {
        try
        {
            return reader.ReadLine();
        }
        catch (IOException e)
        {
            throw new UserInputException($"{fullPath}: read failed ({e.Message})", e);
        }
    }
}

/// <summary>
/// One CSV line split into cell ranges (reused between lines, so parsing allocates nothing per cell). Cells are
/// trimmed and may be wrapped in double quotes; embedded commas inside quotes are not supported.
/// </summary>
internal sealed class CsvRow(string path)
{
    private readonly List<Range> _cells = [];
    private string _text = "";

    public long Line { get; private set; }
    public bool IsHeader { get; set; }
    public int Count => _cells.Count;

    public void Reset(string text, long line)
    {
        _text = text;
        Line = line;
        _cells.Clear();
        int start = 0;
        while (true)
        {
            int comma = text.IndexOf(',', start);
            int end = comma < 0 ? text.Length : comma;
            _cells.Add(Trim(start, end));
            if (comma < 0) break;
            start = comma + 1;
        }
    }

    private Range Trim(int start, int end)
    {
        while (start < end && char.IsWhiteSpace(_text[start])) start++;
        while (end > start && char.IsWhiteSpace(_text[end - 1])) end--;
        if (end - start >= 2 && _text[start] == '"' && _text[end - 1] == '"') { start++; end--; }
        return start..end;
    }

    private ReadOnlySpan<char> Cell(int column) => _text.AsSpan()[_cells[column]];

    public bool AllNumeric()
    {
        for (int c = 0; c < _cells.Count; c++)
            if (!TryParseFinite(Cell(c), out _)) return false;
        return true;
    }

    /// <summary>
    /// pandas writes a DataFrame built from a bare array with the header "0,1,2,…": numeric, but a header. A data
    /// row of exactly 0, 1, 2, … is implausible, so three or more such cells count as a header.
    /// </summary>
    public bool IsColumnIndexSequence()
    {
        if (_cells.Count < 3) return false;
        for (int c = 0; c < _cells.Count; c++)
            if (!int.TryParse(Cell(c), NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n != c) return false;
        return true;
    }

    public int FindColumn(string name)
    {
        for (int c = 0; c < _cells.Count; c++)
            if (Cell(c).Equals(name, StringComparison.Ordinal)) return c;
        for (int c = 0; c < _cells.Count; c++)
            if (Cell(c).Equals(name, StringComparison.OrdinalIgnoreCase)) return c;
        return -1;
    }

    public float Feature(int column)
    {
        if (TryParseFinite(Cell(column), out float value)) return value;
        throw new UserInputException($"{path} line {Line}: column {column + 1} '{Show(Cell(column))}' is not a number");
    }

    /// <summary>Labels must be non-negative integers; "3.0" and "3e0" (numpy's savetxt) count as 3.</summary>
    public int Label(int column, int? classes)
    {
        ReadOnlySpan<char> cell = Cell(column);
        if (!double.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
            || !double.IsFinite(value) || value != Math.Floor(value))
            throw new UserInputException(
                $"{path} line {Line}: column {column + 1} label '{Show(cell)}' is not an integer");
        if (value < 0)
            throw new UserInputException($"{path} line {Line}: label {Show(cell)} is negative, expected 0 or more");
        int limit = classes ?? int.MaxValue;
        if (value >= limit)
            throw new UserInputException(
                classes is null
                    ? $"{path} line {Line}: label {Show(cell)} is too large"
                    : $"{path} line {Line}: label {Show(cell)} out of range 0..{limit - 1}");
        return (int)value;
    }

    /// <summary>The header's first cells, for the "no such column" message.</summary>
    public string Describe()
    {
        var names = new List<string>();
        for (int c = 0; c < Math.Min(_cells.Count, 8); c++) names.Add(Show(Cell(c)));
        return $"[{string.Join(", ", names)}{(_cells.Count > 8 ? $", … ({_cells.Count} columns)" : "")}]";
    }

    /// <summary>
    /// Short unsigned integers (pixel CSVs are almost all cells like "0" or "255") are parsed by hand: exact in
    /// float32 below 2^24 and several times faster than the general parser, which handles everything else.
    /// </summary>
    private static bool TryParseFinite(ReadOnlySpan<char> cell, out float value)
    {
        if (cell.Length is > 0 and <= 7)
        {
            int digits = 0;
            foreach (char ch in cell)
            {
                if ((uint)(ch - '0') > 9) goto General;
                digits = digits * 10 + (ch - '0');
            }
            value = digits;
            return true;
        }
    General:
        return float.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out value) && float.IsFinite(value);
    }

    /// <summary>Keeps the one-line error message one line and short, whatever bytes the cell holds.</summary>
    private static string Show(ReadOnlySpan<char> cell)
    {
        var text = cell.Length > 40 ? string.Concat(cell[..40], "…") : cell.ToString();
        return string.Create(text.Length, text, (dest, src) =>
        {
            for (int i = 0; i < src.Length; i++) dest[i] = char.IsControl(src[i]) ? '?' : src[i];
        });
    }
}
