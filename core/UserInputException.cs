// The one exception type for problems a user can cause (bad files, bad config): the command line prints its
// message as a single line and exits non-zero, so messages must name the file or field, what was expected and
// what was found.
namespace DistTrain.Core;

public class UserInputException(string message, Exception? inner = null) : Exception(message, inner);
